"""A self-contained docs page: the box has no internet, so no CDN-hosted UI; a few lines of
inline JavaScript render /api/v1/openapi.json (operations, parameters, schemas, errors)."""

from __future__ import annotations

DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>edge-face API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:960px;padding:1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.1em;margin:1.6em 0 .4em}
details{border:1px solid #ccc;border-radius:4px;margin:.4em 0;padding:.3em .6em}
summary{cursor:pointer}.m{display:inline-block;width:4.5em;font-weight:bold}
.GET{color:#06c}.POST{color:#080}.PATCH{color:#a60}.DELETE{color:#c00}.PUT{color:#a0a}
pre{background:#f6f6f6;padding:.5em;overflow:auto;font-size:13px}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}
.lock{font-size:12px;color:#777}
</style></head>
<body><h1 id="title">edge-face API</h1>
<p id="desc"></p>
<p>Authenticate with the header <code>api-key: &lt;key&gt;</code> (or <code>x-api-key</code>).
Raw document: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</p>
<div id="ops">loading&hellip;</div>
<h2>Schemas</h2><div id="schemas"></div>
<script>
"use strict";
function el(tag, attrs, text){const e=document.createElement(tag);
  for(const k in (attrs||{})) e.setAttribute(k, attrs[k]);
  if(text!==undefined) e.textContent=text; return e;}
function pre(obj){return el("pre",{},JSON.stringify(obj,null,2));}
fetch("/api/v1/openapi.json").then(r=>r.json()).then(doc=>{
  document.getElementById("title").textContent=doc.info.title+" "+doc.info.version;
  document.getElementById("desc").textContent=doc.info.description||"";
  const ops=document.getElementById("ops"); ops.textContent="";
  for(const [path,item] of Object.entries(doc.paths)){
    for(const [method,op] of Object.entries(item)){
      const d=el("details"); const s=el("summary");
      const M=method.toUpperCase();
      s.appendChild(el("span",{"class":"m "+M},M)); s.appendChild(el("code",{},path));
      s.appendChild(document.createTextNode(" \u2014 "+(op.summary||"")));
      if(!(op.security&&op.security.length===0))
        s.appendChild(el("span",{"class":"lock"}," [api-key]"));
      d.appendChild(s);
      if(op.description) d.appendChild(el("p",{},op.description));
      if(op.parameters){const t=el("table"); const h=el("tr");
        ["name","in","required","schema"].forEach(x=>h.appendChild(el("th",{},x)));
        t.appendChild(h);
        op.parameters.forEach(p=>{const r=el("tr");
          [p.name,p.in,String(p.required),JSON.stringify(p.schema)]
            .forEach(x=>r.appendChild(el("td",{},x)));
          t.appendChild(r);}); d.appendChild(el("h4",{},"Parameters")); d.appendChild(t);}
      if(op.requestBody){d.appendChild(el("h4",{},"Request body"));
        d.appendChild(pre(op.requestBody.content["application/json"].schema));}
      const t=el("table"); const h=el("tr");
      ["status","description","schema"].forEach(x=>h.appendChild(el("th",{},x))); t.appendChild(h);
      for(const [st,r] of Object.entries(op.responses)){const row=el("tr");
        const c=r.content?Object.values(r.content)[0].schema:null;
        [st,r.description||"",c?JSON.stringify(c):""].forEach(x=>row.appendChild(el("td",{},x)));
        t.appendChild(row);}
      d.appendChild(el("h4",{},"Responses")); d.appendChild(t); ops.appendChild(d);
    }
  }
  const sc=document.getElementById("schemas");
  for(const [name,schema] of Object.entries(doc.components.schemas||{})){
    const d=el("details"); d.appendChild(el("summary",{},name)); d.appendChild(pre(schema));
    sc.appendChild(d);}
}).catch(e=>{document.getElementById("ops").textContent="cannot load the document: "+e;});
</script></body></html>
"""
