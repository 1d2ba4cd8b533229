// types.ts and the CRD say the same thing: every field of the spec and the status, each
// enum, and the defaults. The CRD is the source of truth for the API server; types.ts is
// what the code reads and writes. The Helm chart ships the CRD as it is.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { parse } from 'yaml';
import { DRAIN_PHASES, PHASES, RECLAIM_ACTIONS, SPEC_DEFAULTS } from './types';

const ROOT = join(__dirname, '../..');
const CRD_FILE = join(ROOT, 'crds/migration.ai-storage.io_podmigrations.yaml');
const DRAIN_CRD_FILE = join(ROOT, 'crds/migration.ai-storage.io_nodedrains.yaml');
const RECLAIM_CRD_FILE = join(ROOT, 'crds/migration.ai-storage.io_reclaimpolicies.yaml');
const crd = parse(readFileSync(CRD_FILE, 'utf8'));
const root: Schema = crd.spec.versions[0].schema.openAPIV3Schema;

interface Schema {
  type?: string;
  enum?: string[];
  default?: unknown;
  required?: string[];
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

const file = ts.createSourceFile('types.ts', readFileSync(join(__dirname, 'types.ts'), 'utf8'), ts.ScriptTarget.Latest, true);
const declared = new Map<string, ts.InterfaceDeclaration | ts.TypeAliasDeclaration>();
const consts = new Map<string, ts.Expression>();
file.forEachChild((n) => {
  if (ts.isInterfaceDeclaration(n) || ts.isTypeAliasDeclaration(n)) declared.set(n.name.text, n);
  if (ts.isVariableStatement(n))
    for (const d of n.declarationList.declarations) if (d.initializer && ts.isIdentifier(d.name)) consts.set(d.name.text, d.initializer);
});

type Shape = ts.InterfaceDeclaration | ts.TypeLiteralNode | ts.UnionTypeNode;

/** Members of an interface (with the interfaces it extends), a type literal, or a union of type literals (one of them is set). */
function members(n: Shape): ts.PropertySignature[] {
  if (ts.isUnionTypeNode(n)) return n.types.flatMap((t) => (ts.isTypeLiteralNode(t) ? members(t) : []));
  const own = n.members.filter(ts.isPropertySignature);
  if (!ts.isInterfaceDeclaration(n)) return own;
  const inherited = (n.heritageClauses ?? []).flatMap((h) => h.types.map((t) => declared.get(t.expression.getText())));
  return [...inherited.flatMap((i) => (i && ts.isInterfaceDeclaration(i) ? members(i) : [])), ...own];
}

/** String literals of a union, an alias of one, or `(typeof ARRAY)[number]`. */
function literals(t: ts.TypeNode): string[] | undefined {
  if (ts.isUnionTypeNode(t)) {
    const all = t.types.map((x) => (ts.isLiteralTypeNode(x) && ts.isStringLiteral(x.literal) ? x.literal.text : undefined));
    return all.every((x) => x !== undefined) ? (all as string[]) : undefined;
  }
  if (ts.isTypeReferenceNode(t)) {
    const d = declared.get(t.typeName.getText());
    return d && ts.isTypeAliasDeclaration(d) ? literals(d.type) : undefined;
  }
  if (ts.isIndexedAccessTypeNode(t) && ts.isParenthesizedTypeNode(t.objectType) && ts.isTypeQueryNode(t.objectType.type)) {
    let init = consts.get(t.objectType.type.exprName.getText());
    while (init && (ts.isAsExpression(init) || ts.isSatisfiesExpression(init))) init = init.expression;
    if (init && ts.isArrayLiteralExpression(init)) return init.elements.map((e) => (e as ts.StringLiteral).text);
  }
  return undefined;
}

/** Every difference between a TypeScript type and the CRD's schema of the same field. */
function compare(t: ts.TypeNode, s: Schema, path: string, out: string[]): void {
  const enumOf = literals(t);
  if (enumOf) {
    if (JSON.stringify([...enumOf].sort()) !== JSON.stringify([...(s.enum ?? [])].sort()))
      out.push(`${path}: enum ${enumOf} in types.ts, ${s.enum} in the CRD`);
    return;
  }
  if (ts.isArrayTypeNode(t)) {
    if (s.type !== 'array' || !s.items) return void out.push(`${path}: an array in types.ts, ${s.type} in the CRD`);
    return compare(t.elementType, s.items, `${path}[]`, out);
  }
  let shape: Shape | undefined = ts.isTypeLiteralNode(t) || (ts.isUnionTypeNode(t) && t.types.every(ts.isTypeLiteralNode)) ? t : undefined;
  if (ts.isTypeReferenceNode(t)) {
    const name = t.typeName.getText();
    if (name === 'Record') {
      if (!s.additionalProperties) out.push(`${path}: a map in types.ts, not in the CRD`);
      return;
    }
    if (name === 'V1Pod') {
      if (!s['x-kubernetes-preserve-unknown-fields'])
        out.push(`${path}: a whole pod in types.ts; the CRD must preserve its unknown fields`);
      return;
    }
    const d = declared.get(name);
    if (d && ts.isInterfaceDeclaration(d)) shape = d;
    else if (d && ts.isTypeAliasDeclaration(d)) return compare(d.type, s, path, out);
  }
  if (shape) {
    if (s.type !== 'object' || !s.properties) return void out.push(`${path}: an object in types.ts, ${s.type} in the CRD`);
    const props = members(shape);
    const names = props.map((p) => p.name.getText());
    for (const n of names) if (!(n in s.properties)) out.push(`${path}.${n}: in types.ts, not in the CRD`);
    for (const n of Object.keys(s.properties)) if (!names.includes(n)) out.push(`${path}.${n}: in the CRD, not in types.ts`);
    for (const p of props)
      if (p.type && s.properties[p.name.getText()]) compare(p.type, s.properties[p.name.getText()], `${path}.${p.name.getText()}`, out);
    return;
  }
  const want = {
    [ts.SyntaxKind.StringKeyword]: ['string'],
    [ts.SyntaxKind.NumberKeyword]: ['number', 'integer'],
    [ts.SyntaxKind.BooleanKeyword]: ['boolean'],
  }[t.kind as number];
  if (want && !want.includes(s.type ?? '')) out.push(`${path}: ${t.getText()} in types.ts, ${s.type} in the CRD`);
}

/** Every difference between the interface `name` and the schema `s`. */
function compareDeclared(name: string, s: Schema, path: string): string[] {
  const out: string[] = [];
  const d = declared.get(name) as ts.InterfaceDeclaration;
  for (const p of members(d)) {
    const field = p.name.getText();
    if (!s.properties?.[field]) out.push(`${path}.${field}: in types.ts, not in the CRD`);
    else if (p.type) compare(p.type, s.properties[field], `${path}.${field}`, out);
  }
  for (const field of Object.keys(s.properties ?? {}))
    if (!members(d).some((p) => p.name.getText() === field)) out.push(`${path}.${field}: in the CRD, not in types.ts`);
  return out;
}
it('declares the fields, types and enums of the spec that the CRD declares', () => {
  expect(compareDeclared('PodMigrationSpec', root.properties!.spec, 'spec')).toEqual([]);
});

it('declares the fields, types and enums of the status that the CRD declares', () => {
  expect(compareDeclared('PodMigrationStatus', root.properties!.status, 'status')).toEqual([]);
});

it('requires in types.ts what the CRD requires of the spec', () => {
  const spec = declared.get('PodMigrationSpec') as ts.InterfaceDeclaration;
  const required = members(spec)
    .filter((p) => !p.questionToken)
    .map((p) => p.name.getText());
  expect(required.sort()).toEqual([...(root.properties!.spec.required ?? [])].sort());
});

it('applies the defaults the CRD applies', () => {
  const fromCrd = (s: Schema): Record<string, unknown> =>
    Object.fromEntries(
      Object.entries(s.properties ?? {}).flatMap(([k, v]) => {
        if (v.properties && Object.values(v.properties).some((x) => x.default !== undefined)) return [[k, fromCrd(v)]];
        return v.default !== undefined && !(typeof v.default === 'object') ? [[k, v.default]] : [];
      }),
    );
  expect(fromCrd(root.properties!.spec)).toEqual(SPEC_DEFAULTS);
});

it('knows the phases the CRD allows, in order', () => {
  expect(root.properties!.status.properties!.phase.enum).toEqual([...PHASES]);
});

it('is shipped unchanged in the Helm chart', () => {
  expect(readFileSync(join(ROOT, 'charts/podmigration-operator/files/crd.yaml'), 'utf8')).toBe(readFileSync(CRD_FILE, 'utf8'));
  expect(readFileSync(join(ROOT, 'charts/podmigration-operator/files/nodedrain-crd.yaml'), 'utf8')).toBe(
    readFileSync(DRAIN_CRD_FILE, 'utf8'),
  );
  expect(readFileSync(join(ROOT, 'charts/podmigration-operator/files/reclaimpolicy-crd.yaml'), 'utf8')).toBe(
    readFileSync(RECLAIM_CRD_FILE, 'utf8'),
  );
});

describe('NodeDrain', () => {
  const drain: Schema = parse(readFileSync(DRAIN_CRD_FILE, 'utf8')).spec.versions[0].schema.openAPIV3Schema;
  it('declares the fields, types and enums of its spec and status that the CRD declares', () => {
    expect(compareDeclared('NodeDrainSpec', drain.properties!.spec, 'spec')).toEqual([]);
    expect(compareDeclared('NodeDrainStatus', drain.properties!.status, 'status')).toEqual([]);
    expect(drain.properties!.status.properties!.phase.enum).toEqual([...DRAIN_PHASES]);
  });
});

describe('ReclaimPolicy', () => {
  const rp: Schema = parse(readFileSync(RECLAIM_CRD_FILE, 'utf8')).spec.versions[0].schema.openAPIV3Schema;
  it('declares the fields, types and enums of its spec and status that the CRD declares', () => {
    expect(compareDeclared('ReclaimPolicySpec', rp.properties!.spec, 'spec')).toEqual([]);
    expect(compareDeclared('ReclaimPolicyStatus', rp.properties!.status, 'status')).toEqual([]);
    expect(rp.properties!.spec.properties!.action.enum).toEqual([...RECLAIM_ACTIONS]);
  });
});
