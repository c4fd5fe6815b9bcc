/**
 * Structural checks of an OpenAPI 3.1 document, offline (no schema download): the rules of the specification's
 * "OpenAPI Object", "Paths", "Operation", "Parameter", "Request Body", "Responses", "Reference" and "Security
 * Requirement" sections that a generator can get wrong. Returns the problems found, each naming where; none means the
 * document passes.
 */

type Json = Record<string, unknown>;

const METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);
const PARAMETER_PLACES = new Set(['path', 'query', 'header', 'cookie']);
const STATUS_KEY = /^([1-5][0-9][0-9]|[1-5]XX|default)$/;
const MEDIA_TYPE = /^[a-z]+\/[a-z0-9.+*-]+$/i;
const JSON_TYPES = new Set(['object', 'array', 'string', 'number', 'integer', 'boolean', 'null']);

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The value at a local JSON pointer (`#/components/schemas/Error`), or undefined. */
function resolvePointer(doc: Json, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let node: unknown = doc;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (!isObject(node) && !Array.isArray(node)) return undefined;
    node = (node as Json)[key];
  }
  return node;
}

/** Every `$ref` in `value`, with where it sits. */
function refsIn(value: unknown, at: string, out: [string, string][]): [string, string][] {
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) refsIn(v, `${at}/${i}`, out);
  } else if (isObject(value)) {
    for (const [key, inner] of Object.entries(value)) {
      if (key === '$ref' && typeof inner === 'string') out.push([at, inner]);
      else refsIn(inner, `${at}/${key}`, out);
    }
  }
  return out;
}

/** `type` keywords of JSON Schemas in `value` that name no JSON type. */
function badTypes(value: unknown, at: string, out: string[]): string[] {
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) badTypes(v, `${at}/${i}`, out);
  } else if (isObject(value)) {
    const type = value.type;
    const types = Array.isArray(type) ? type : type === undefined ? [] : [type];
    for (const t of types) if (typeof t !== 'string' || !JSON_TYPES.has(t)) out.push(`${at}: schema type ${String(t)}`);
    for (const [key, inner] of Object.entries(value)) {
      // `properties` maps names to schemas: a property may be called "type".
      if (key === 'properties' && isObject(inner)) {
        for (const [name, schema] of Object.entries(inner)) badTypes(schema, `${at}/properties/${name}`, out);
      } else if (key !== 'type' && key !== 'enum' && key !== 'const' && key !== 'example') {
        badTypes(inner, `${at}/${key}`, out);
      }
    }
  }
  return out;
}

function checkContent(content: unknown, at: string, problems: string[]): void {
  if (!isObject(content) || Object.keys(content).length === 0) {
    problems.push(`${at}: content must map at least one media type`);
    return;
  }
  for (const [type, media] of Object.entries(content)) {
    if (!MEDIA_TYPE.test(type)) problems.push(`${at}: ${type} is not a media type`);
    if (!isObject(media) || !isObject(media.schema)) problems.push(`${at}/${type}: no schema`);
  }
}

function checkParameters(params: unknown, path: string, at: string, problems: string[]): void {
  const inPath = new Set([...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]));
  const seen = new Set<string>();
  const declaredPath = new Set<string>();
  const list = params === undefined ? [] : params;
  if (!Array.isArray(list)) {
    problems.push(`${at}: parameters must be an array`);
    return;
  }
  for (const p of list) {
    if (!isObject(p) || typeof p.name !== 'string' || typeof p.in !== 'string') {
      problems.push(`${at}: a parameter without name or in`);
      continue;
    }
    if (!PARAMETER_PLACES.has(p.in)) problems.push(`${at}: parameter ${p.name} in ${p.in}`);
    const key = `${p.in}:${p.name}`;
    if (seen.has(key)) problems.push(`${at}: parameter ${key} twice`);
    seen.add(key);
    if (!isObject(p.schema)) problems.push(`${at}: parameter ${p.name} has no schema`);
    if (p.in === 'path') {
      declaredPath.add(p.name);
      if (p.required !== true) problems.push(`${at}: path parameter ${p.name} must be required`);
      if (!inPath.has(p.name)) problems.push(`${at}: path parameter ${p.name} is not in the path`);
    }
  }
  for (const name of inPath) {
    if (name !== undefined && !declaredPath.has(name)) problems.push(`${at}: {${name}} has no path parameter`);
  }
}

function checkOperation(doc: Json, op: Json, path: string, at: string, problems: string[]): void {
  checkParameters(op.parameters, path, at, problems);
  if (op.requestBody !== undefined) {
    if (!isObject(op.requestBody)) problems.push(`${at}: requestBody must be an object`);
    else checkContent(op.requestBody.content, `${at}/requestBody`, problems);
  }
  if (!isObject(op.responses) || Object.keys(op.responses).length === 0) {
    problems.push(`${at}: no responses`);
  } else {
    for (const [status, response] of Object.entries(op.responses)) {
      if (!STATUS_KEY.test(status)) problems.push(`${at}: response key ${status}`);
      if (!isObject(response)) {
        problems.push(`${at}/${status}: not an object`);
        continue;
      }
      const target = typeof response.$ref === 'string' ? resolvePointer(doc, response.$ref) : response;
      if (!isObject(target) || typeof target.description !== 'string') {
        problems.push(`${at}/${status}: a response needs a description`);
      } else if (target.content !== undefined) checkContent(target.content, `${at}/${status}`, problems);
    }
  }
  if (op.tags !== undefined && (!Array.isArray(op.tags) || op.tags.some((t) => typeof t !== 'string'))) {
    problems.push(`${at}: tags must be strings`);
  }
  if (op.security !== undefined) checkSecurity(doc, op.security, at, problems);
}

function checkSecurity(doc: Json, security: unknown, at: string, problems: string[]): void {
  const components = isObject(doc.components) ? doc.components : {};
  const schemes = isObject(components.securitySchemes) ? components.securitySchemes : {};
  if (!Array.isArray(security)) {
    problems.push(`${at}: security must be an array`);
    return;
  }
  for (const requirement of security) {
    if (!isObject(requirement)) problems.push(`${at}: a security requirement must be an object`);
    else for (const name of Object.keys(requirement)) if (!(name in schemes)) problems.push(`${at}: no scheme ${name}`);
  }
}

/** The problems of `doc` as an OpenAPI 3.1 document; empty when there are none. */
export function openApiProblems(doc: unknown): string[] {
  const problems: string[] = [];
  if (!isObject(doc)) return ['the document is not an object'];
  if (typeof doc.openapi !== 'string' || !/^3\.1\.\d+$/.test(doc.openapi)) problems.push('openapi: not 3.1.x');
  const info = doc.info;
  if (!isObject(info) || typeof info.title !== 'string' || typeof info.version !== 'string') {
    problems.push('info: title and version are required');
  }
  if (!isObject(doc.paths)) return [...problems, 'paths: missing'];
  const operationIds = new Set<string>();
  const usedTags = new Set<string>();
  const templates = new Set<string>();
  for (const [path, item] of Object.entries(doc.paths)) {
    if (!path.startsWith('/')) problems.push(`paths: ${path} does not start with /`);
    // Two paths that differ only in their parameters' names are the same path (OpenAPI: "MUST NOT exist").
    const template = path.replace(/\{[^}]+\}/g, '{}');
    if (templates.has(template)) problems.push(`paths: ${path} repeats another path`);
    templates.add(template);
    if (!isObject(item)) {
      problems.push(`paths/${path}: not an object`);
      continue;
    }
    for (const [method, op] of Object.entries(item)) {
      const at = `paths/${path}/${method}`;
      if (!METHODS.has(method)) {
        problems.push(`${at}: not an HTTP method`);
        continue;
      }
      if (!isObject(op)) {
        problems.push(`${at}: not an object`);
        continue;
      }
      if (typeof op.operationId === 'string') {
        if (operationIds.has(op.operationId)) problems.push(`${at}: operationId ${op.operationId} twice`);
        operationIds.add(op.operationId);
      }
      for (const tag of Array.isArray(op.tags) ? op.tags : []) usedTags.add(String(tag));
      checkOperation(doc, op, path, at, problems);
    }
  }
  const declared = Array.isArray(doc.tags) ? doc.tags.map((t) => (isObject(t) ? String(t.name) : '')) : [];
  if (new Set(declared).size !== declared.length) problems.push('tags: a tag is declared twice');
  for (const tag of usedTags) if (!declared.includes(tag)) problems.push(`tags: ${tag} is used but not declared`);
  if (doc.security !== undefined) checkSecurity(doc, doc.security, 'security', problems);
  const components = isObject(doc.components) ? doc.components : {};
  for (const [name, scheme] of Object.entries(isObject(components.securitySchemes) ? components.securitySchemes : {})) {
    if (!isObject(scheme) || typeof scheme.type !== 'string') problems.push(`securitySchemes/${name}: no type`);
    else if (scheme.type === 'http' && typeof scheme.scheme !== 'string') {
      problems.push(`securitySchemes/${name}: http needs a scheme`);
    }
  }
  for (const [at, ref] of refsIn(doc, '#', [])) {
    if (resolvePointer(doc, ref) === undefined) problems.push(`${at}: $ref ${ref} does not resolve`);
  }
  problems.push(...badTypes(doc.paths, '#/paths', []), ...badTypes(components.schemas, '#/components/schemas', []));
  return problems;
}
