"""The page at GET /: one card per loaded model, to try it. Self-contained (inline CSS and JavaScript, no CDN:
users run this offline), plain, and laid out for a phone's screen as well as a desktop's. Opened as
/?api_key=KEY it sends the key with each of its requests."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nanofm serve</title>
<style>
body{font:16px/1.4 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#24344d;color:#fff;padding:.8em 1em}header h1{margin:0;font-size:1.2em}
header small{opacity:.8}main{max-width:760px;margin:auto;padding:.5em}
.card{background:#fff;border-radius:8px;padding:1em;margin:.8em 0;box-shadow:0 1px 3px #0002}
.card h2{margin:0 0 .2em;font-size:1.05em}.kind{color:#667;font-size:.85em;margin-bottom:.6em}
textarea,input[type=text]{width:100%;box-sizing:border-box;font:inherit;padding:.45em;border:1px solid #bbc;border-radius:6px}
textarea{min-height:3em}label{font-size:.9em;margin-right:.8em;white-space:nowrap}
input[type=number]{width:5em;font:inherit}
button{font:inherit;background:#2b6cb0;color:#fff;border:0;border-radius:6px;padding:.45em 1.1em;margin:.5em 0}
button:disabled{opacity:.5}.out{margin-top:.4em;overflow-x:auto}.err{color:#b00020}
.bar{display:flex;align-items:center;gap:.5em;margin:.15em 0}.bar span:first-child{min-width:7em}
.bar i{display:block;height:.8em;background:#2b6cb0;border-radius:3px}.bar b{font-weight:normal;color:#555;font-size:.85em}
.answer{font-size:1.1em;font-weight:600;margin:.3em 0}.tag{display:inline-block;margin:.1em;padding:.05em .35em;border-radius:4px;background:#eef}
.tag small{color:#2b6cb0;margin-left:.25em}table.heat{border-collapse:collapse;font-size:.75em;margin-top:.5em}
table.heat td,table.heat th{padding:2px 4px;text-align:center}table.heat th{font-weight:normal;color:#444}
img.gen,img.preview{max-width:100%;image-rendering:pixelated;border-radius:4px;margin-top:.4em}img.preview{max-height:96px}
</style></head><body>
<header><h1>nanofm serve</h1><small id="status">loading the models...</small></header>
<main id="models"></main>
<script>
"use strict";
const KEY = new URLSearchParams(location.search).get("api_key");
const HEAD = KEY ? {"X-API-Key": KEY} : {};
const el = (tag, attrs = {}, ...kids) => { const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) (k in e && k !== "list") ? e[k] = v : e.setAttribute(k, v);
  e.append(...kids); return e; };
async function call(path, body, json = true) {
  const opts = {method: "POST", headers: {...HEAD}, body};
  if (json) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  const r = await fetch(path, opts);
  if (!r.ok) { let m = r.statusText; try { m = (await r.json()).error.message; } catch (e) {} throw new Error(r.status + ": " + m); }
  return r;
}
const bars = rows => el("div", {}, ...rows.map(([name, p]) => el("div", {className: "bar"}, el("span", {}, name),
  el("i", {style: `width:${Math.max(2, p * 180)}px`}), el("b", {}, (100 * p).toFixed(1) + "%"))));
function heatmap(a) {
  const t = el("table", {className: "heat"}), head = el("tr", {}, el("th"));
  a.source.forEach(s => head.append(el("th", {}, s))); t.append(head);
  a.weights.forEach((row, i) => { const mx = Math.max(...row) || 1, tr = el("tr", {}, el("th", {}, a.target[i] || ""));
    row.forEach(w => tr.append(el("td", {title: w.toFixed(3), style: `background:rgba(43,108,176,${(w / mx).toFixed(3)})`}, "\\u00a0")));
    t.append(tr); });
  return t;
}
const FORMS = {
  "fill-mask": {text: "La capital de [MASK] es Madrid.", label: "Fill the masks",
    run: async (m, f) => (await (await call(m.endpoint, {text: f.text.value, top_k: 5})).json()).masks.map((c, i) =>
      el("div", {}, el("div", {className: "answer"}, "[MASK] " + (i + 1)), bars(c.map(x => [x.token, x.probability]))))},
  "translation": {text: "Soy estudiante.", label: "Translate", attention: true,
    run: async (m, f) => { const r = await (await call(m.endpoint, {text: f.text.value, attention: f.attention.checked})).json();
      return [el("div", {className: "answer"}, r.translation || "(empty)"), ...(r.attention ? [heatmap(r.attention)] : [])]; }},
  "text-classification": {text: "Abra el menú Formato.", label: "Classify",
    run: async (m, f) => [bars((await (await call(m.endpoint, {text: f.text.value, top_k: 5})).json()).labels.map(x => [x.label, x.probability]))]},
  "token-classification": {text: "Juan vive en Madrid.", label: "Tag",
    run: async (m, f) => { const r = await (await call(m.endpoint, {text: f.text.value})).json();
      return [el("div", {}, ...r.tokens.map(t => el("span", {className: "tag"}, t.word, el("small", {}, t.tag))))]; }},
  "image-classification": {file: true, label: "Classify the image",
    run: async (m, f) => { const d = new FormData(); d.append("files", f.image.files[0]); d.append("top_k", "5");
      const r = await (await call(m.endpoint, d, false)).json();
      return [el("img", {className: "preview", src: URL.createObjectURL(f.image.files[0]), alt: "uploaded"}),
              bars(r.results[0].labels.map(x => [x.label, x.probability]))]; }},
  "text-to-image": {text: "un vestido rojo", label: "Draw", caption: true,
    run: async (m, f) => { const body = {caption: f.text.value, n: +f.n.value, steps: +f.steps.value, guidance: +f.guidance.value, seed: +f.seed.value};
      const blob = await (await call(m.endpoint, body)).blob();
      return [el("img", {className: "gen", src: URL.createObjectURL(blob), alt: body.caption})]; }},
};
function card(m) {
  const spec = FORMS[m.kind], f = el("form", {}), out = el("div", {className: "out", role: "status"});
  if (spec.file) f.append(el("input", {type: "file", name: "image", accept: "image/*", required: true}));
  else if (spec.caption) f.append(el("input", {type: "text", name: "text", value: spec.text, required: true}));
  else f.append(el("textarea", {name: "text", required: true}, spec.text));
  if (spec.attention) f.append(el("label", {}, el("input", {type: "checkbox", name: "attention", checked: true}), " attention heatmap"));
  if (spec.caption) for (const [n, v, extra] of [["n", 2, {min: 1, max: 4}], ["steps", 25, {min: 1}], ["guidance", 3, {step: 0.5, min: 0}], ["seed", 0, {min: 0}]])
    f.append(el("label", {}, n + " ", el("input", {type: "number", name: n, value: v, ...extra})));
  const go = el("button", {type: "submit"}, spec.label); f.append(el("div", {}, go));
  f.onsubmit = async e => { e.preventDefault(); go.disabled = true; out.replaceChildren("...");
    try { out.replaceChildren(...await spec.run(m, f)); } catch (err) { out.replaceChildren(el("div", {className: "err"}, err.message)); }
    go.disabled = false; };
  return el("section", {className: "card", id: "model-" + m.name, "data-kind": m.kind},
    el("h2", {}, m.name), el("div", {className: "kind"}, m.kind + " \\u00b7 POST " + m.endpoint), f, out);
}
fetch("/models", {headers: HEAD}).then(async r => {
  if (!r.ok) throw new Error(r.status + ": " + ((await r.json()).error || {}).message);
  const models = await r.json();
  document.getElementById("models").append(...models.map(card));
  document.getElementById("status").textContent = models.length + " model(s) \\u00b7 API: /docs \\u00b7 metrics: /metrics";
}).catch(e => { document.getElementById("status").textContent = "could not list the models: " + e.message; });
</script></body></html>
"""
