// Devices a pod holds through Dynamic Resource Allocation (resource.k8s.io/v1): the claims it
// uses, how many devices they were allocated, whether one is pinned to a node the copy
// cannot use, and whether a node offers a DeviceClass at all.
import type { V1Node, V1NodeSelector, V1Pod } from '@kubernetes/client-node';
import { ignoreNotFound } from '../errors';
import type { KubeClient } from '../kube/client';
import { nodeSelectorMatches } from '../migration/placement';

const RESOURCE = '/apis/resource.k8s.io/v1';

export interface ResourceClaim {
  metadata: { name: string; namespace?: string };
  spec?: {
    devices?: { requests?: { name: string; exactly?: { deviceClassName: string }; firstAvailable?: { deviceClassName: string }[] }[] };
  };
  status?: {
    allocation?: { devices?: { results?: unknown[] }; nodeSelector?: V1NodeSelector };
    reservedFor?: { resource: string; name: string; uid: string }[];
  };
}

interface ResourceClaimTemplate {
  spec: { spec: NonNullable<ResourceClaim['spec']> };
}

/** The pod's claims by the name the pod gives them: named claims, and those made for it from templates. */
export async function claimsOf(client: KubeClient, pod: V1Pod, only?: ReadonlySet<string>): Promise<Map<string, ResourceClaim>> {
  const ns = pod.metadata!.namespace!;
  const made = new Map((pod.status?.resourceClaimStatuses ?? []).map((s) => [s.name, s.resourceClaimName]));
  const out = new Map<string, ResourceClaim>();
  for (const c of pod.spec?.resourceClaims ?? []) {
    if (only && !only.has(c.name)) continue;
    const name = c.resourceClaimName ?? made.get(c.name);
    if (!name) continue;
    const claim = await ignoreNotFound(
      client.get<ResourceClaim>(`${RESOURCE}/namespaces/${ns}/resourceclaims/${encodeURIComponent(name)}`),
    );
    if (claim) out.set(c.name, claim);
  }
  return out;
}

/** How many devices these claims were allocated. */
export function devicesAllocated(claims: Iterable<ResourceClaim>): number {
  let n = 0;
  for (const c of claims) n += c.status?.allocation?.devices?.results?.length ?? 0;
  return n;
}

/** The node an allocation's node selector names (matchFields metadata.name, or the hostname label), for messages. */
function nodeOf(selector: V1NodeSelector): string {
  for (const t of selector.nodeSelectorTerms ?? []) {
    const f = [...(t.matchFields ?? []), ...(t.matchExpressions ?? [])].find(
      (r) => (r.key === 'metadata.name' || r.key === 'kubernetes.io/hostname') && r.operator === 'In',
    );
    if (f?.values?.length) return f.values.join(', ');
  }
  return 'the nodes its node selector names';
}

/**
 * Why a named claim the copy keeps cannot serve `node`: its devices are allocated on
 * another node. With the source gone first (DeleteBeforeCreate) a claim the source alone
 * holds is released and allocated anew, so only a shared one is in the way then.
 */
export function claimPinned(
  podClaimName: string,
  claim: ResourceClaim,
  pod: V1Pod,
  node: V1Node,
  sourceGoesFirst: boolean,
): string | undefined {
  const selector = claim.status?.allocation?.nodeSelector;
  if (!selector || nodeSelectorMatches(selector, node)) return undefined;
  const others = (claim.status?.reservedFor ?? []).filter((r) => r.uid !== pod.metadata!.uid);
  if (sourceGoesFirst && others.length === 0) return undefined;
  const where = nodeOf(selector);
  const shared = others.length
    ? `; it is shared with ${others.map((r) => `${r.resource} ${r.name}`).join(', ')}, which keep it allocated there`
    : '';
  return `ResourceClaim ${claim.metadata.name} (the pod's claim ${podClaimName}) is allocated devices on ${where}, which cannot serve node ${node.metadata!.name}${shared}`;
}

/** The device classes a pod's claim templates ask for. */
export async function templateDeviceClasses(client: KubeClient, pod: V1Pod, only: ReadonlySet<string>): Promise<string[]> {
  const ns = pod.metadata!.namespace!;
  const classes = new Set<string>();
  for (const c of pod.spec?.resourceClaims ?? []) {
    if (!only.has(c.name) || !c.resourceClaimTemplateName) continue;
    const t = await ignoreNotFound(
      client.get<ResourceClaimTemplate>(
        `${RESOURCE}/namespaces/${ns}/resourceclaimtemplates/${encodeURIComponent(c.resourceClaimTemplateName)}`,
      ),
    );
    for (const r of t?.spec.spec.devices?.requests ?? []) {
      if (r.exactly) classes.add(r.exactly.deviceClassName);
      // One of several would do: only a request with a single choice is certain.
      if (r.firstAvailable?.length === 1) classes.add(r.firstAvailable[0].deviceClassName);
    }
  }
  return [...classes];
}

interface DeviceClass {
  spec?: { selectors?: { cel?: { expression: string } }[] };
}
interface ResourceSlice {
  spec: { driver: string; nodeName?: string; nodeSelector?: V1NodeSelector; allNodes?: boolean; devices?: unknown[] };
}

/**
 * Whether no ResourceSlice offers `node` a device of this class, when that is certain: the
 * class selects by driver alone (`device.driver == "..."`), and no slice of that driver
 * serves the node. Undefined when it cannot be told without evaluating the class's CEL.
 */
export async function classAbsentOn(client: KubeClient, className: string, node: V1Node): Promise<boolean | undefined> {
  const dc = await ignoreNotFound(client.get<DeviceClass>(`${RESOURCE}/deviceclasses/${encodeURIComponent(className)}`));
  if (!dc) return undefined;
  const drivers = (dc.spec?.selectors ?? []).map(
    (s) => /^\s*device\.driver\s*==\s*["']([^"']+)["']\s*$/.exec(s.cel?.expression ?? '')?.[1],
  );
  if (drivers.length !== 1 || !drivers[0]) return undefined;
  const slices = (
    await client.get<{ items: ResourceSlice[] }>(`${RESOURCE}/resourceslices`, { fieldSelector: `spec.driver=${drivers[0]}` })
  ).items;
  const serves = (s: ResourceSlice) =>
    (s.spec.devices?.length ?? 0) > 0 &&
    (s.spec.allNodes ||
      s.spec.nodeName === node.metadata!.name ||
      (!!s.spec.nodeSelector && nodeSelectorMatches(s.spec.nodeSelector, node)));
  return !slices.some(serves);
}
