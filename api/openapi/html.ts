/**
 * The API reference as one self-contained HTML page (inline CSS, no script, nothing fetched: nodes are often offline),
 * rendered from the OpenAPI document: a contents list by tag, then each operation with its parameters, request body
 * schema and response schema.
 */
import type { JsonSchema, OpenApiDocument, OpenApiOperation } from './document.js';

const ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ESCAPES[ch] ?? ch);
}

const STYLE = `
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1b1f24;background:#fff}
header{padding:1.2em 2em;background:#0d3b66;color:#fff}header h1{margin:0;font-size:1.5em}
header p{margin:.3em 0 0;max-width:60em;opacity:.9}header a{color:#fff}
nav{position:fixed;top:0;bottom:0;left:0;width:19em;overflow:auto;padding:1em;background:#f4f6f8;box-sizing:border-box}
main{margin-left:19em}section.op{padding:1em 2em;border-bottom:1px solid #e3e6ea}
nav h3{margin:1em 0 .2em;font-size:.9em;text-transform:uppercase;color:#555}nav a{display:block;font-size:.85em;
text-decoration:none;color:#0d3b66;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.m{display:inline-block;min-width:4.2em;font:bold .8em monospace;text-align:center;border-radius:3px;color:#fff;
padding:.15em .3em;margin-right:.5em}.get{background:#2b7a0b}.post{background:#1f5fbf}.put{background:#b26b00}
.delete{background:#b3261e}code,pre{font-family:ui-monospace,monospace;font-size:.85em}
pre{background:#f4f6f8;padding:.7em;overflow:auto;max-height:28em}table{border-collapse:collapse}
td,th{border:1px solid #e3e6ea;padding:.2em .6em;text-align:left;vertical-align:top}.rpc{color:#555;font-size:.9em}
h2.tag{padding:.6em 1em;margin:0;background:#e9eef4}
`;

function schemaBlock(schema: JsonSchema): string {
  return `<pre>${escapeHtml(JSON.stringify(schema, null, 2))}</pre>`;
}

function operationHtml(method: string, path: string, op: OpenApiOperation): string {
  const parts = [
    `<section class="op" id="${escapeHtml(op.operationId)}">`,
    `<h3><span class="m ${escapeHtml(method)}">${escapeHtml(method.toUpperCase())}</span><code>${escapeHtml(path)}</code></h3>`,
    `<p>${escapeHtml(op.summary)}</p>`,
  ];
  if (op.description !== undefined) parts.push(`<p class="rpc">${escapeHtml(op.description)}</p>`);
  if (op.parameters !== undefined) {
    parts.push('<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>required</th><th>schema</th></tr>');
    for (const p of op.parameters) {
      parts.push(
        `<tr><td><code>${escapeHtml(p.name)}</code></td><td>${p.in}</td><td>${p.required ? 'yes' : 'no'}</td>` +
          `<td><code>${escapeHtml(JSON.stringify(p.schema))}</code></td></tr>`,
      );
    }
    parts.push('</table>');
  }
  if (op.requestBody !== undefined) {
    parts.push(
      '<h4>Request body (application/json)</h4>',
      schemaBlock(op.requestBody.content['application/json'].schema),
    );
  }
  const ok = op.responses['200'] as { content?: Record<string, { schema?: JsonSchema }> } | undefined;
  const okSchema = ok?.content?.['application/json']?.schema;
  if (okSchema !== undefined && Object.keys(okSchema).length > 1)
    parts.push('<h4>Response 200</h4>', schemaBlock(okSchema));
  const errors = Object.keys(op.responses).filter((s) => s !== '200');
  parts.push(`<p class="rpc">Errors: ${errors.join(', ')} with <code>{ code, message, field? }</code>.</p>`);
  parts.push('</section>');
  return parts.join('\n');
}

/** Renders the reference page of `doc`. */
export function renderReferenceHtml(doc: OpenApiDocument): string {
  const byTag = new Map<string, string[]>();
  const toc = new Map<string, string[]>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = op.tags[0] ?? 'Other';
      byTag.set(tag, [...(byTag.get(tag) ?? []), operationHtml(method, path, op)]);
      const link = `<a href="#${escapeHtml(op.operationId)}">${escapeHtml(method.toUpperCase())} ${escapeHtml(path)}</a>`;
      toc.set(tag, [...(toc.get(tag) ?? []), link]);
    }
  }
  const nav = [...toc].map(([tag, links]) => `<h3>${escapeHtml(tag)}</h3>${links.join('')}`).join('\n');
  const body = [...byTag].map(([tag, ops]) => `<h2 class="tag">${escapeHtml(tag)}</h2>\n${ops.join('\n')}`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(doc.info.title)} ${escapeHtml(doc.info.version)}: reference</title><style>${STYLE}</style></head>
<body><nav>${nav}</nav><main><header><h1>${escapeHtml(doc.info.title)} ${escapeHtml(doc.info.version)}</h1>
<p>${escapeHtml(doc.info.description)}</p><p>Machine-readable: <a href="openapi.json">openapi.json</a> (OpenAPI ${escapeHtml(doc.openapi)}).</p></header>
${body}
</main></body></html>
`;
}
