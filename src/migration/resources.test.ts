import { formatCpu, formatMemory, parseQuantity, percentSaved, podRequests, savings, sumRequests } from './resources';

describe('parseQuantity', () => {
  it.each([
    ['1500m', 1.5],
    ['0.5', 0.5],
    ['2', 2],
    ['100k', 100_000],
    ['768Mi', 768 * 2 ** 20],
    ['1Gi', 2 ** 30],
    ['1e3', 1000],
    ['1.5Gi', 1.5 * 2 ** 30],
  ])('%s -> %d', (q, n) => expect(parseQuantity(q)).toBeCloseTo(n, 9));

  it('rejects what is not a quantity', () => {
    expect(() => parseQuantity('12 cores')).toThrow(/invalid quantity/);
    expect(() => parseQuantity('Gi')).toThrow(/invalid quantity/);
  });
});

describe('formatting', () => {
  it('states CPU in millicores, rounding up as Kubernetes does', () => {
    expect(formatCpu(1.5)).toBe('1500m');
    expect(formatCpu(0.0001)).toBe('1m');
    expect(formatCpu(0)).toBe('0m');
  });
  it('states memory in the largest exact binary unit', () => {
    expect(formatMemory(768 * 2 ** 20)).toBe('768Mi');
    expect(formatMemory(2 ** 30)).toBe('1Gi');
    expect(formatMemory(1536 * 2 ** 20)).toBe('1536Mi');
    expect(formatMemory(1000)).toBe('1000');
    expect(formatMemory(0)).toBe('0');
  });
});

describe('sumRequests', () => {
  it('adds the requests of the containers and ignores missing ones', () => {
    const t = sumRequests([
      { name: 'a', resources: { requests: { cpu: '750m', memory: '128Mi' } } },
      { name: 'b', resources: { requests: { cpu: '250m' } } },
      { name: 'c' },
    ]);
    expect(t.cpu).toBeCloseTo(1);
    expect(t.memory).toBe(128 * 2 ** 20);
  });
});

describe('savings', () => {
  it('computes percentages with one decimal from the two totals', () => {
    const s = savings({ cpu: 1.5, memory: 768 * 2 ** 20 }, { cpu: 1, memory: 256 * 2 ** 20 });
    expect(s).toEqual({ cpuPercent: 33.3, memoryPercent: 66.7, cpu: '33.3%', memory: '66.7%', basis: 'requests' });
  });
  it('says n/a rather than inventing a figure when nothing was requested', () => {
    expect(percentSaved(0, 0)).toBeUndefined();
    expect(savings({ cpu: 0, memory: 0 }, { cpu: 0, memory: 0 }).cpu).toBe('n/a');
  });
  it('reports zero when nothing was dropped', () => {
    expect(percentSaved(2, 2)).toBe(0);
  });
});

describe('podRequests (as kube-scheduler computes them)', () => {
  const c = (name: string, cpu: string, memory: string, restartPolicy?: string) => ({
    name,
    ...(restartPolicy ? { restartPolicy } : {}),
    resources: { requests: { cpu, memory } },
  });
  const Gi = 2 ** 30;
  const Mi = 2 ** 20;

  it('is the sum of the containers when there is nothing else', () => {
    const t = podRequests({ containers: [c('a', '750m', '128Mi'), c('b', '250m', '128Mi')] });
    expect(t.cpu).toBeCloseTo(1);
    expect(t.memory).toBe(256 * Mi);
  });

  it('adds restartable init containers (sidecars), which run beside the app', () => {
    const t = podRequests({ containers: [c('app', '1', '1Gi')], initContainers: [c('proxy', '1', '256Mi', 'Always')] });
    expect(t.cpu).toBeCloseTo(2);
    expect(t.memory).toBe(Gi + 256 * Mi);
  });

  it('takes the largest ordinary init container, with the sidecars started before it', () => {
    // Init "fetch" runs with sidecar "log" (started before it): 3 + 0.5 = 3.5 CPU, more
    // than the app phase (1 + 0.5 + 0.25); memory peaks in the app phase.
    const t = podRequests({
      containers: [c('app', '1', '2Gi')],
      initContainers: [c('log', '500m', '128Mi', 'Always'), c('fetch', '3', '256Mi'), c('late', '250m', '64Mi', 'Always')],
    });
    expect(t.cpu).toBeCloseTo(3.5);
    expect(t.memory).toBe(2 * Gi + 128 * Mi + 64 * Mi);
  });

  it('uses pod-level requests for the resources they set, and adds the overhead', () => {
    const t = podRequests({
      containers: [c('a', '500m', '128Mi'), c('b', '500m', '128Mi')],
      resources: { requests: { cpu: '2' } },
      overhead: { cpu: '100m', memory: '10Mi' },
    });
    expect(t.cpu).toBeCloseTo(2.1);
    expect(t.memory).toBe(266 * Mi);
  });

  it('makes a copy that keeps pod-level requests save nothing', () => {
    const resources = { requests: { cpu: '2', memory: '2Gi' } };
    const original = podRequests({ containers: [c('a', '1', '1Gi'), c('b', '200m', '200Mi')], resources });
    const copy = podRequests({ containers: [c('a', '1', '1Gi')], resources });
    expect(savings(original, copy)).toMatchObject({ cpuPercent: 0, memoryPercent: 0 });
  });
});
