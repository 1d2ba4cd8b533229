{{/*
The prefix of every name the chart makes, scoped to the release as cert-manager's chart
scopes its names: the release's name, then the chart's unless the release's already holds
it; fullnameOverride replaces both. At most 36 characters, so that the longest Service
name, <prefix>-controller-manager-metrics, is still a DNS label.
*/}}
{{- define "pm.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 36 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 36 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 36 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pm.labels" -}}
app.kubernetes.io/name: podmigration-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The release's operator pods: its Services, budget and spread select these, never another install's. */}}
{{- define "pm.selectorLabels" -}}
app.kubernetes.io/name: podmigration-operator
app.kubernetes.io/component: controller
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
