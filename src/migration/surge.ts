// Surge mode (ReplicaSet pods): which of the pod's labels to leave off the copy so that its
// ReplicaSet does not adopt it before it is Ready. Pure functions.
import type { V1LabelSelector } from '@kubernetes/client-node';

/** The lowest pod-deletion-cost there is: a ReplicaSet removes such a pod first. */
export const LOWEST_COST = '-2147483648';

/** The label a Deployment puts in each of its ReplicaSets' selectors. */
export const POD_TEMPLATE_HASH = 'pod-template-hash';

/** Does the selector match these labels? (the API server's label selector semantics: an omitted selector matches everything) */
export function selectorMatches(selector: V1LabelSelector | undefined, labels: Readonly<Record<string, string>> = {}): boolean {
  if (!selector) return true;
  const ml = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  return (
    ml &&
    (selector.matchExpressions ?? []).every((e) => {
      const has = Object.prototype.hasOwnProperty.call(labels, e.key);
      switch (e.operator) {
        case 'In':
          return has && (e.values ?? []).includes(labels[e.key]);
        case 'NotIn':
          return !has || !(e.values ?? []).includes(labels[e.key]);
        case 'Exists':
          return has;
        case 'DoesNotExist':
          return !has;
        default:
          return false;
      }
    })
  );
}

const OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

/** What is wrong with a label selector as stored (a field named, as the API server would), or undefined. */
export function selectorProblem(selector: unknown, field: string): string | undefined {
  if (selector === undefined || selector === null) return undefined;
  if (typeof selector !== 'object' || Array.isArray(selector)) return `${field} must be a label selector (matchLabels, matchExpressions)`;
  const s = selector as Record<string, unknown>;
  const unknown = Object.keys(s).filter((k) => k !== 'matchLabels' && k !== 'matchExpressions');
  if (unknown.length)
    return `${field}: unknown field ${JSON.stringify(unknown[0])} (a label selector has matchLabels and matchExpressions)`;
  const labels = s.matchLabels;
  if (
    labels !== undefined &&
    (typeof labels !== 'object' || labels === null || Array.isArray(labels) || Object.values(labels).some((v) => typeof v !== 'string'))
  )
    return `${field}.matchLabels must map label keys to string values`;
  const exprs = s.matchExpressions;
  if (exprs === undefined) return undefined;
  if (!Array.isArray(exprs)) return `${field}.matchExpressions must be a list`;
  for (const [i, e] of exprs.entries()) {
    const at = `${field}.matchExpressions[${i}]`;
    if (typeof e !== 'object' || e === null) return `${at} must be an object with key and operator`;
    const { key, operator, values } = e as Record<string, unknown>;
    if (typeof key !== 'string' || !key) return `${at}.key must be a label key`;
    if (typeof operator !== 'string' || !OPERATORS.includes(operator)) return `${at}.operator must be one of ${OPERATORS.join(', ')}`;
    if (values !== undefined && (!Array.isArray(values) || values.some((v) => typeof v !== 'string')))
      return `${at}.values must be a list of strings`;
    const some = Array.isArray(values) && values.length > 0;
    if ((operator === 'In' || operator === 'NotIn') !== some)
      return `${at}: values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist`;
  }
  return undefined;
}

/**
 * One label of the pod whose absence makes the selector miss, as `{key: value}`: the
 * Deployment's pod-template-hash when the selector has it (Services select on the other
 * labels, so the copy keeps serving-relevant labels), otherwise the first label the
 * selector requires. Undefined when no single label can be withheld (a selector of only
 * NotIn/DoesNotExist terms, or one that does not match the pod at all).
 */
export function labelsToWithhold(selector: V1LabelSelector, labels: Record<string, string>): Record<string, string> | undefined {
  if (!selectorMatches(selector, labels)) return undefined;
  const required = [
    ...Object.keys(selector.matchLabels ?? {}).sort(),
    ...(selector.matchExpressions ?? []).filter((e) => e.operator === 'In' || e.operator === 'Exists').map((e) => e.key),
  ];
  const key = required.includes(POD_TEMPLATE_HASH) ? POD_TEMPLATE_HASH : required[0];
  if (key === undefined || labels[key] === undefined) return undefined;
  const { [key]: _, ...rest } = labels;
  return selectorMatches(selector, rest) ? undefined : { [key]: labels[key] };
}
