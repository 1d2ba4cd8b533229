{{/* The prefix of every name the chart makes. */}}
{{- define "pm.name" -}}
{{- .Values.fullnameOverride | default "podmigration" | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "pm.labels" -}}
app.kubernetes.io/name: podmigration-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "pm.selectorLabels" -}}
app.kubernetes.io/name: podmigration-operator
app.kubernetes.io/component: controller
{{- end -}}
