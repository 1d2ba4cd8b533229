// Integration tests wait for a real control plane; none of them measures speed.
jest.setTimeout(180_000);
