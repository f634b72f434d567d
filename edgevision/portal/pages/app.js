// The portal's pages: a small vanilla JS layer over the Training API (the same routes scripts call).
// Every piece of user data goes into the page as text (textContent / attributes), never as HTML.
"use strict";

const API = "/customvision/v3.3/training";
const PAGE = 48;
const session = { loginRequired: false, csrf: null, advanced: true };
let timers = [];

// -- small helpers ---------------------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "value") el.value = value;
    else if (name === "checked") el.checked = true;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, String(value));
  for (const child of children.flat()) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

function notify(message, error) {
  const box = document.getElementById("notice");
  const line = h("div", { class: error ? "error" : "" }, message);
  box.replaceChildren(line);
  if (!error) setTimeout(() => line.remove(), 6000);
}

function pct(value) {
  return `${(100 * value).toFixed(1)}%`;
}

function when(text) {
  return text ? new Date(text).toLocaleString() : "";
}

function later(fn, ms) {
  const id = setTimeout(fn, ms);
  timers.push(id);
}

class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra) {
  const out = { ...(extra || {}) };
  if (session.csrf) out["X-CSRF-Token"] = session.csrf;
  return out;
}

async function answer(response) {
  if (response.status === 204) return null;
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (_) {
    body = null;
  }
  if (!response.ok && response.status !== 207) {
    if (response.status === 401 && session.loginRequired) {
      session.csrf = null;
      showLogin("Your session ended: log in again.");
    }
    throw new ApiFailure(response.status, body?.code || "Error", body?.message || `HTTP ${response.status}`);
  }
  return body;
}

async function api(method, path, { query, json, form } = {}) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v === null || v === undefined || v === "") continue;
    for (const item of Array.isArray(v) ? v : [v]) params.append(k, item);
  }
  const qs = params.toString() ? `?${params}` : "";
  const init = { method, headers: headers(), credentials: "same-origin" };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form) {
    init.body = form;
  }
  return answer(await fetch(`${API}${path}${qs}`, init));
}

// Uploads go through XMLHttpRequest: fetch has no upload progress.
function upload(path, file, query, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const qs = new URLSearchParams(query).toString();
    xhr.open("POST", `${API}${path}${qs ? "?" + qs : ""}`);
    for (const [k, v] of Object.entries(headers())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch (_) {
        body = null;
      }
      if (xhr.status === 200 || xhr.status === 207) resolve(body);
      else reject(new ApiFailure(xhr.status, body?.code || "Error", body?.message || `HTTP ${xhr.status}`));
    };
    xhr.onerror = () => reject(new ApiFailure(0, "Network", "the portal did not answer"));
    const form = new FormData();
    form.append("imageData", file, file.name);
    xhr.send(form);
  });
}

function guarded(fn) {
  return async (...args) => {
    try {
      await fn(...args);
    } catch (err) {
      if (err instanceof ApiFailure) notify(`${err.code}: ${err.message}`, true);
      else throw err;
    }
  };
}

function chunks(items, size) {
  const out = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

// -- login -----------------------------------------------------------------------------------------------------

async function loadSession() {
  const state = await (await fetch("/portal/session", { credentials: "same-origin" })).json();
  session.loginRequired = state.loginRequired;
  session.csrf = state.csrfToken;
  session.advanced = state.advancedTraining !== false;
  document.getElementById("logout").hidden = !(state.loginRequired && state.authenticated);
  return state.authenticated;
}

function showLogin(message) {
  timers.forEach(clearTimeout);
  document.getElementById("logout").hidden = true;
  document.getElementById("crumbs").replaceChildren();
  const key = h("input", { id: "login-key", type: "password", autocomplete: "current-password", required: true });
  const error = h("p", { id: "login-error", class: "error" }, message || "");
  const form = h(
    "form",
    { class: "card login", id: "login" },
    h("h1", {}, "Log in"),
    h("p", {}, "This portal is guarded by its training key."),
    h("label", {}, "Training key ", key),
    h("div", { class: "row" }, h("button", { class: "primary", type: "submit" }, "Log in")),
    error,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const response = await fetch("/portal/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ key: key.value }),
    });
    const body = await response.json();
    if (!response.ok) {
      error.textContent = body.message || "login failed";
      return;
    }
    session.csrf = body.csrfToken;
    document.getElementById("logout").hidden = false;
    route();
  });
  document.getElementById("main").replaceChildren(form);
  key.focus();
}

async function logout() {
  await answer(await fetch("/portal/logout", { method: "POST", headers: headers(), credentials: "same-origin" }));
  session.csrf = null;
  showLogin("Logged out.");
}

// -- routing ---------------------------------------------------------------------------------------------------

const TABS = [
  ["images", "Training images"],
  ["train", "Train"],
  ["performance", "Performance"],
  ["quicktest", "Quick test"],
  ["predictions", "Predictions"],
];

async function route() {
  timers.forEach(clearTimeout);
  timers = [];
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  const main = document.getElementById("main");
  try {
    if (parts[0] === "p" && parts[1]) {
      const project = await api("GET", `/projects/${encodeURIComponent(parts[1])}`);
      const tab = TABS.some(([name]) => name === parts[2]) ? parts[2] : "images";
      crumbs(project);
      const body = h("div", { id: `view-${tab}` });
      main.replaceChildren(tabs(project, tab), body);
      await VIEWS[tab](project, body);
    } else {
      crumbs(null);
      await projectsView(main);
    }
  } catch (err) {
    if (!(err instanceof ApiFailure)) throw err;
    if (err.status === 401 && session.loginRequired) return;
    main.replaceChildren(h("section", {}, h("p", { class: "error" }, `${err.code}: ${err.message}`)));
  }
}

function crumbs(project) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren(h("a", { href: "#/" }, "Projects"), project ? h("span", {}, "› ", project.name) : null);
}

function tabs(project, active) {
  return h(
    "nav",
    { class: "tabs" },
    TABS.map(([name, label]) =>
      h("a", { href: `#/p/${project.id}/${name}`, class: name === active ? "active" : "", id: `tab-${name}` }, label),
    ),
  );
}

// -- projects --------------------------------------------------------------------------------------------------

async function projectsView(main) {
  const [projects, domains] = await Promise.all([api("GET", "/projects"), api("GET", "/domains")]);
  const domainNames = Object.fromEntries(domains.map((d) => [d.id, d.name]));
  const rows = projects.map((p) =>
    h(
      "tr",
      {},
      h("td", {}, h("a", { href: `#/p/${p.id}/images`, class: "project-link" }, p.name)),
      h("td", {}, p.description || ""),
      h("td", {}, p.settings.classificationType),
      h("td", {}, domainNames[p.settings.domainId] || p.settings.domainId),
      h("td", {}, when(p.created)),
      h(
        "td",
        {},
        h(
          "button",
          {
            class: "danger",
            onclick: guarded(async () => {
              if (!confirm(`Delete project ${p.name} and all its images and iterations?`)) return;
              await api("DELETE", `/projects/${p.id}`);
              notify(`Deleted ${p.name}`);
              route();
            }),
          },
          "Delete",
        ),
      ),
    ),
  );
  const name = h("input", { id: "project-name", required: true, maxlength: 256 });
  const description = h("input", { id: "project-description" });
  const type = h("select", { id: "project-type" }, h("option", {}, "Multiclass"), h("option", {}, "Multilabel"));
  const domain = h("select", { id: "project-domain" }, domains.map((d) => h("option", { value: d.id }, d.name)));
  const form = h(
    "form",
    { class: "row" },
    h("label", {}, "Name ", name),
    h("label", {}, "Description ", description),
    h("label", {}, "Type ", type),
    h("label", {}, "Domain ", domain),
    h("button", { class: "primary", type: "submit", id: "create-project" }, "Create project"),
  );
  form.addEventListener(
    "submit",
    guarded(async (e) => {
      e.preventDefault();
      const made = await api("POST", "/projects", {
        query: { name: name.value, description: description.value, classificationType: type.value, domainId: domain.value },
      });
      location.hash = `#/p/${made.id}/images`;
    }),
  );
  main.replaceChildren(
    h("section", {}, h("h1", {}, "New project"), form),
    h(
      "section",
      {},
      h("h1", {}, "Projects"),
      projects.length
        ? h(
            "table",
            { id: "projects" },
            h("tr", {}, ["Name", "Description", "Type", "Domain", "Created", ""].map((t) => h("th", {}, t))),
            rows,
          )
        : h("p", { class: "muted" }, "No projects yet."),
    ),
  );
}

// -- training images -------------------------------------------------------------------------------------------

const imageState = { project: null, filter: "all", iteration: "", skip: 0, selected: new Set() };

async function imagesView(project, body) {
  if (imageState.project !== project.id) {
    Object.assign(imageState, { project: project.id, filter: "all", iteration: "", skip: 0, selected: new Set() });
  }
  const [tags, iterations] = await Promise.all([
    api("GET", `/projects/${project.id}/tags`),
    api("GET", `/projects/${project.id}/iterations`),
  ]);
  const query = {
    taggingStatus: imageState.filter === "untagged" ? "Untagged" : "All",
    tagIds: imageState.filter.startsWith("tag:") ? imageState.filter.slice(4) : null,
    iterationId: imageState.iteration,
  };
  const [images, total] = await Promise.all([
    api("GET", `/projects/${project.id}/images`, { query: { ...query, take: PAGE, skip: imageState.skip } }),
    api("GET", `/projects/${project.id}/images/count`, { query }),
  ]);
  const rerender = () => imagesView(project, body);
  body.replaceChildren(
    h(
      "div",
      { class: "layout" },
      h("aside", {}, filtersPanel(project, tags, iterations, rerender), tagForm(project, rerender)),
      h(
        "div",
        {},
        uploadPanel(project, tags, rerender),
        selectionBar(project, tags, images, rerender),
        imageGrid(images),
        pager(total, rerender),
      ),
    ),
  );
}

function filtersPanel(project, tags, iterations, rerender) {
  const link = (key, label) =>
    h(
      "a",
      {
        href: "#",
        class: imageState.filter === key ? "active" : "",
        "data-filter": key,
        onclick: (e) => {
          e.preventDefault();
          Object.assign(imageState, { filter: key, skip: 0 });
          imageState.selected.clear();
          rerender();
        },
      },
      label,
    );
  const iteration = h(
    "select",
    {
      id: "filter-iteration",
      onchange: () => {
        Object.assign(imageState, { iteration: iteration.value, skip: 0 });
        rerender();
      },
    },
    h("option", { value: "" }, "all images"),
    iterations.map((it) => h("option", { value: it.id }, `in ${it.name}`)),
  );
  iteration.value = imageState.iteration;
  return h(
    "section",
    { class: "filters" },
    h("h2", {}, "Filter"),
    link("all", "All images"),
    link("untagged", "Untagged"),
    tags.map((t) => link(`tag:${t.id}`, `${t.name}${t.type === "Negative" ? " (negative)" : ""} · ${t.imageCount}`)),
    h("div", { class: "row" }, iteration),
  );
}

function tagForm(project, rerender) {
  const name = h("input", { id: "tag-name", required: true, placeholder: "new tag" });
  const negative = h("input", { id: "tag-negative", type: "checkbox" });
  const form = h(
    "form",
    { class: "card" },
    h("h2", {}, "Tags"),
    h("div", { class: "row" }, name),
    h("label", { class: "row" }, negative, "Negative (images that show none of the tags)"),
    h("button", { type: "submit", id: "add-tag" }, "Add tag"),
  );
  form.addEventListener(
    "submit",
    guarded(async (e) => {
      e.preventDefault();
      await api("POST", `/projects/${project.id}/tags`, {
        query: { name: name.value, type: negative.checked ? "Negative" : "Regular" },
      });
      notify(`Tag ${name.value} added`);
      rerender();
    }),
  );
  return form;
}

function tagSelect(tags, id) {
  return h(
    "select",
    { id },
    h("option", { value: "" }, "(no tag)"),
    tags.map((t) => h("option", { value: t.id }, t.name + (t.type === "Negative" ? " (negative)" : ""))),
  );
}

function uploadPanel(project, tags, rerender) {
  const picker = h("input", { type: "file", id: "upload-files", multiple: true, accept: "image/*" });
  const tag = tagSelect(tags, "upload-tag");
  const bar = h("progress", { id: "upload-progress", max: 1, value: 0, hidden: true });
  const status = h("span", { id: "upload-status" });
  const errors = h("ul", { id: "upload-errors", class: "error" });
  const send = guarded(async (files) => {
    files = [...files];
    if (!files.length) return;
    errors.replaceChildren();
    bar.hidden = false;
    let done = 0;
    let ok = 0;
    for (const file of files) {
      status.textContent = `uploading ${done + 1} of ${files.length}: ${file.name}`;
      try {
        const summary = await upload(`/projects/${project.id}/images`, file, tag.value ? { tagIds: tag.value } : {}, (f) => {
          bar.value = (done + f) / files.length;
        });
        const result = summary.images[0];
        if (result.status === "OK" || result.status === "OKDuplicate") ok += 1;
        else errors.append(h("li", {}, `${file.name}: ${result.status}`));
      } catch (err) {
        if (!(err instanceof ApiFailure)) throw err;
        errors.append(h("li", {}, `${file.name}: ${err.code} (${err.message})`));
      }
      done += 1;
      bar.value = done / files.length;
    }
    status.textContent = `${ok} of ${files.length} uploaded`;
    const kept = errors.cloneNode(true);
    const keptStatus = status.textContent;
    await rerender();
    document.getElementById("upload-errors").replaceWith(kept);
    document.getElementById("upload-status").textContent = keptStatus;
  });
  picker.addEventListener("change", () => send(picker.files));
  const drop = h("div", { class: "drop", id: "drop-zone" }, "Drop images here, or ", picker);
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    send(e.dataTransfer.files);
  });
  return h(
    "section",
    {},
    h("h2", {}, "Add images"),
    h("div", { class: "row" }, h("label", {}, "Tag new images with ", tag)),
    drop,
    h("div", { class: "row" }, bar, status),
    errors,
  );
}

function selectionBar(project, tags, images, rerender) {
  const selected = () => [...imageState.selected];
  const tag = tagSelect(tags, "selection-tag");
  const act = (fn) =>
    guarded(async () => {
      if (!selected().length) return notify("Select images first", true);
      await fn(selected());
      imageState.selected.clear();
      rerender();
    });
  return h(
    "div",
    { class: "row card" },
    h("span", { id: "selected-count" }, `${imageState.selected.size} selected`),
    h(
      "button",
      {
        id: "select-page",
        onclick: () => {
          images.forEach((i) => imageState.selected.add(i.id));
          rerender();
        },
      },
      "Select page",
    ),
    tag,
    h(
      "button",
      {
        id: "tag-selected",
        onclick: act(async (ids) => {
          if (!tag.value) throw new ApiFailure(0, "NoTag", "pick a tag");
          for (const part of chunks(ids, 128)) {
            await api("POST", `/projects/${project.id}/images/tags`, {
              json: { tags: part.map((imageId) => ({ imageId, tagId: tag.value })) },
            });
          }
        }),
      },
      "Tag",
    ),
    h(
      "button",
      {
        id: "untag-selected",
        onclick: act(async (ids) => {
          const tagIds = tag.value ? [tag.value] : tags.map((t) => t.id);
          for (const part of chunks(ids, 64)) {
            await api("DELETE", `/projects/${project.id}/images/tags`, {
              query: { imageIds: part.join(","), tagIds: tagIds.join(",") },
            });
          }
        }),
      },
      "Untag",
    ),
    h(
      "button",
      {
        id: "delete-selected",
        class: "danger",
        onclick: act(async (ids) => {
          if (!confirm(`Delete ${ids.length} images?`)) return;
          for (const part of chunks(ids, 64)) {
            await api("DELETE", `/projects/${project.id}/images`, { query: { imageIds: part.join(",") } });
          }
        }),
      },
      "Delete",
    ),
  );
}

function imageGrid(images) {
  if (!images.length) return h("p", { class: "muted", id: "no-images" }, "No images here.");
  return h(
    "div",
    { class: "grid", id: "images" },
    images.map((image) => {
      const box = h("input", { type: "checkbox", checked: imageState.selected.has(image.id) });
      const names = (image.tags || []).map((t) => t.tagName).join(", ");
      const tile = h(
        "div",
        { class: `tile${imageState.selected.has(image.id) ? " selected" : ""}`, "data-id": image.id },
        box,
        h("img", { src: image.thumbnailUri, alt: names || "untagged", loading: "lazy" }),
        h("div", { class: "caption" }, names || "untagged"),
      );
      tile.addEventListener("click", (e) => {
        if (imageState.selected.has(image.id)) imageState.selected.delete(image.id);
        else imageState.selected.add(image.id);
        tile.classList.toggle("selected", imageState.selected.has(image.id));
        box.checked = imageState.selected.has(image.id);
        if (e.target === box) e.stopPropagation();
        document.getElementById("selected-count").textContent = `${imageState.selected.size} selected`;
      });
      return tile;
    }),
  );
}

function pager(total, rerender) {
  const page = Math.floor(imageState.skip / PAGE) + 1;
  const pages = Math.max(1, Math.ceil(total / PAGE));
  const go = (skip) => () => {
    imageState.skip = skip;
    rerender();
  };
  return h(
    "div",
    { class: "row" },
    h("button", { onclick: go(imageState.skip - PAGE), disabled: page <= 1 }, "‹ Previous"),
    h("span", { id: "page" }, `page ${page} of ${pages} · ${total} images`),
    h("button", { onclick: go(imageState.skip + PAGE), disabled: page >= pages }, "Next ›"),
  );
}

// -- training --------------------------------------------------------------------------------------------------

function seconds(iteration) {
  const end = iteration.trainedAt ? new Date(iteration.trainedAt) : new Date();
  return Math.max(0, Math.round((end - new Date(iteration.created)) / 1000));
}

async function trainView(project, body) {
  const iterations = await api("GET", `/projects/${project.id}/iterations`);
  const hours = h("input", { id: "advanced-hours", type: "number", min: 1, max: 24, value: 1 });
  const train = (query) =>
    guarded(async () => {
      const made = await api("POST", `/projects/${project.id}/train`, { query });
      notify(`${made.name} is training`);
      trainView(project, body);
    });
  const rows = iterations.map((it) =>
    h(
      "tr",
      { "data-id": it.id },
      h("td", {}, it.name),
      h("td", { class: "status" }, it.status),
      h("td", {}, it.trainingType),
      h("td", {}, when(it.created)),
      h("td", { class: "taken" }, it.status === "Training" ? `${seconds(it)} s so far` : it.trainedAt ? `${seconds(it)} s` : ""),
      h("td", {}, it.publishName || ""),
      h("td", { class: "error" }, it.trainingErrorDetails || ""),
    ),
  );
  body.replaceChildren(
    h(
      "section",
      {},
      h("h1", {}, "Train"),
      h(
        "div",
        { class: "row" },
        h("button", { class: "primary", id: "train-quick", onclick: train({ trainingType: "Regular" }) }, "Train (Quick)"),
        h("span", { class: "muted" }, "or"),
        h(
          "button",
          {
            id: "train-advanced",
            disabled: !session.advanced,
            title: session.advanced ? null : "this portal has no PyTorch (pip install 'edgevision[finetune]')",
            onclick: train({ trainingType: "Advanced", reservedBudgetInHours: hours.value || 1 }),
          },
          "Advanced training",
        ),
        h("label", {}, "budget, hours ", hours),
      ),
      h("p", { class: "muted" }, "Advanced training fine-tunes the network (needs the finetune extra on the portal)."),
    ),
    h(
      "section",
      {},
      h("h2", {}, "Iterations"),
      iterations.length
        ? h(
            "table",
            { id: "iterations" },
            h("tr", {}, ["Iteration", "Status", "Type", "Started", "Time taken", "Published as", ""].map((t) => h("th", {}, t))),
            rows,
          )
        : h("p", { class: "muted" }, "Not trained yet."),
    ),
  );
  if (iterations.some((it) => it.status === "Training")) later(() => trainView(project, body).catch(() => {}), 2000);
}

// -- performance -----------------------------------------------------------------------------------------------

function predictedAt(scores, multilabel, threshold) {
  if (multilabel) return scores.filter((s) => s.probability >= threshold).map((s) => s.tagId);
  const top = scores.reduce((a, b) => (b.probability > a.probability ? b : a), scores[0]);
  return top && top.probability >= threshold ? [top.tagId] : [];
}

function truth(image, labels) {
  return (image.tags || []).map((t) => t.tagId).filter((id) => labels.has(id));
}

function curve(images, labels, multilabel) {
  // one point per distinct score (every threshold where the counts change), at most ~200 of them
  const all = [...new Set(images.flatMap((i) => i.predictions.map((p) => p.probability)))].sort((a, b) => a - b);
  const every = Math.max(1, Math.ceil(all.length / 200));
  const thresholds = [0, ...all.filter((_, i) => i % every === 0), 1];
  const points = [];
  for (const threshold of thresholds) {
    let tp = 0;
    let predicted = 0;
    let actual = 0;
    for (const image of images) {
      const want = new Set(truth(image, labels));
      const got = predictedAt(image.predictions, multilabel, threshold);
      predicted += got.length;
      actual += want.size;
      tp += got.filter((id) => want.has(id)).length;
    }
    points.push({ threshold, precision: predicted ? tp / predicted : 1, recall: actual ? tp / actual : 0 });
  }
  return points;
}

function prChart(points, threshold) {
  const size = 220;
  const pad = 30;
  const x = (r) => pad + r * (size - pad - 10);
  const y = (p) => size - pad - p * (size - pad - 10);
  const near = points.reduce((a, b) => (Math.abs(b.threshold - threshold) < Math.abs(a.threshold - threshold) ? b : a));
  return svg(
    "svg",
    { width: size, height: size, id: "pr-curve", role: "img", "aria-label": "precision-recall curve" },
    svg("rect", { x: pad, y: 10, width: size - pad - 10, height: size - pad - 10, fill: "#fafbfc", stroke: "#ccc" }),
    svg("polyline", {
      points: points.map((p) => `${x(p.recall).toFixed(1)},${y(p.precision).toFixed(1)}`).join(" "),
      fill: "none",
      stroke: "#1f6fd1",
      "stroke-width": 2,
    }),
    svg("circle", { cx: x(near.recall), cy: y(near.precision), r: 5, fill: "#d14b1f" }),
    svg("text", { x: size / 2, y: size - 8, "text-anchor": "middle" }, "recall"),
    svg("text", { x: 10, y: size / 2, transform: `rotate(-90 10 ${size / 2})`, "text-anchor": "middle" }, "precision"),
  );
}

function confusion(images, labelList, multilabel, threshold) {
  const labels = new Set(labelList.map((t) => t.id));
  const columns = [...labelList.map((t) => t.id), "none"];
  const counts = Object.fromEntries(labelList.map((t) => [t.id, Object.fromEntries(columns.map((c) => [c, 0]))]));
  for (const image of images) {
    const got = predictedAt(image.predictions, multilabel, threshold);
    for (const want of truth(image, labels)) {
      if (!got.length) counts[want].none += 1;
      for (const id of got) counts[want][id] += 1;
    }
  }
  const max = Math.max(1, ...Object.values(counts).flatMap((row) => Object.values(row)));
  const cell = 44;
  const left = 110;
  const top = 70;
  const names = Object.fromEntries([...labelList.map((t) => [t.id, t.name]), ["none", "(none)"]]);
  const short = (s) => (s.length > 14 ? `${s.slice(0, 13)}…` : s);
  const parts = [];
  columns.forEach((c, j) => {
    parts.push(svg("text", { x: left + j * cell + cell / 2, y: top - 8, transform: `rotate(-40 ${left + j * cell + cell / 2} ${top - 8})` }, short(names[c])));
  });
  labelList.forEach((t, i) => {
    parts.push(svg("text", { x: left - 6, y: top + i * cell + cell / 2 + 4, "text-anchor": "end" }, short(t.name)));
    columns.forEach((c, j) => {
      const n = counts[t.id][c];
      const shade = Math.round(255 - (200 * n) / max);
      const good = c === t.id;
      parts.push(
        svg("rect", {
          x: left + j * cell,
          y: top + i * cell,
          width: cell - 2,
          height: cell - 2,
          fill: good ? `rgb(${shade},${shade},255)` : `rgb(255,${shade},${shade})`,
        }),
        svg("text", { x: left + j * cell + cell / 2 - 1, y: top + i * cell + cell / 2 + 4, "text-anchor": "middle" }, String(n)),
      );
    });
  });
  return svg(
    "svg",
    { width: Math.max(330, left + columns.length * cell + 10), height: top + labelList.length * cell + 24, id: "confusion", role: "img" },
    ...parts,
    svg("text", { x: 4, y: top + labelList.length * cell + 16 }, "rows: the image's tag · columns: predicted"),
  );
}

async function allScores(project, iteration) {
  const count = await api("GET", `/projects/${project.id}/iterations/${iteration.id}/performance/images/count`);
  const out = [];
  for (let skip = 0; skip < count; skip += 256) {
    out.push(
      ...(await api("GET", `/projects/${project.id}/iterations/${iteration.id}/performance/images`, {
        query: { take: 256, skip },
      })),
    );
  }
  return out;
}

async function performanceView(project, body) {
  const iterations = (await api("GET", `/projects/${project.id}/iterations`)).filter((it) => it.status === "Completed");
  if (!iterations.length) {
    body.replaceChildren(h("section", {}, h("p", { class: "muted" }, "No trained iteration yet: train first.")));
    return;
  }
  const chosen = iterations.find((it) => it.id === performanceView.iteration) || iterations[iterations.length - 1];
  performanceView.iteration = chosen.id;
  const select = h(
    "select",
    {
      id: "iteration",
      onchange: () => {
        performanceView.iteration = select.value;
        performanceView(project, body);
      },
    },
    iterations.map((it) => h("option", { value: it.id }, `${it.name}${it.publishName ? ` (published as ${it.publishName})` : ""}`)),
  );
  select.value = chosen.id;
  const multilabel = chosen.classificationType === "Multilabel";
  const [tags, scores] = await Promise.all([
    api("GET", `/projects/${project.id}/tags`, { query: { iterationId: chosen.id } }),
    allScores(project, chosen),
  ]);
  const labelList = tags.filter((t) => t.type !== "Negative");
  const labels = new Set(labelList.map((t) => t.id));
  const points = curve(scores, labels, multilabel);
  const slider = h("input", { id: "threshold", type: "range", min: 0, max: 100, step: 1, value: 50 });
  const shown = h("span", { id: "threshold-value" }, "50%");
  const numbers = h("div", { id: "numbers" });
  const charts = h("div", { class: "charts" });
  const wrong = h("div", { id: "wrong" });
  let asked = 0;
  const update = guarded(async () => {
    const threshold = Number(slider.value) / 100;
    shown.textContent = `${slider.value}%`;
    const mine = ++asked;
    const perf = await api("GET", `/projects/${project.id}/iterations/${chosen.id}/performance`, { query: { threshold } });
    if (mine !== asked) return; // a later move of the slider has already asked
    numbers.replaceChildren(metricsBlock(perf));
    charts.replaceChildren(
      h("div", {}, h("h2", {}, "Precision-recall"), prChart(points, threshold)),
      h("div", {}, h("h2", {}, "Confusion matrix"), confusion(scores, labelList, multilabel, threshold)),
    );
    wrong.replaceChildren(wrongImages(scores, labels, multilabel, threshold));
  });
  slider.addEventListener("input", update);
  const compare = h("div", { id: "compare" });
  const compareAll = guarded(async () => {
    const threshold = Number(slider.value) / 100;
    const rows = [];
    for (const it of iterations) {
      const perf = await api("GET", `/projects/${project.id}/iterations/${it.id}/performance`, { query: { threshold } });
      rows.push(
        h(
          "tr",
          { class: it.id === chosen.id ? "chosen" : "" },
          h("td", {}, it.name),
          h("td", {}, it.trainingType),
          h("td", {}, pct(perf.precision)),
          h("td", {}, pct(perf.recall)),
          h("td", {}, pct(perf.averagePrecision)),
          h("td", {}, it.publishName || ""),
        ),
      );
    }
    compare.replaceChildren(
      h("h2", {}, `Iterations compared at ${slider.value}%`),
      h("table", {}, h("tr", {}, ["Iteration", "Type", "Precision", "Recall", "AP", "Published as"].map((t) => h("th", {}, t))), rows),
    );
  });
  slider.addEventListener("change", compareAll); // once the slider is let go: one request per iteration
  body.replaceChildren(
    h(
      "section",
      {},
      h("div", { class: "row" }, h("label", {}, "Iteration ", select)),
      h("div", { class: "row" }, h("label", {}, "Probability threshold ", slider), shown),
      numbers,
      charts,
    ),
    h("section", {}, compare),
    publishPanel(project, chosen, iterations),
    h("section", {}, h("h2", {}, "Images this iteration got wrong"), wrong),
  );
  await update();
  await compareAll();
}

function metricsBlock(perf) {
  const metric = (id, label, value) => h("div", { class: "metric" }, label, h("b", { id }, pct(value)));
  return h(
    "div",
    {},
    h(
      "div",
      { class: "metrics" },
      metric("precision", "Precision", perf.precision),
      metric("recall", "Recall", perf.recall),
      metric("ap", "AP", perf.averagePrecision),
    ),
    h(
      "table",
      { id: "per-tag" },
      h("tr", {}, ["Tag", "Precision", "Recall", "AP"].map((t) => h("th", {}, t))),
      perf.perTagPerformance.map((t) =>
        h("tr", {}, h("td", {}, t.name), h("td", {}, pct(t.precision)), h("td", {}, pct(t.recall)), h("td", {}, pct(t.averagePrecision))),
      ),
    ),
  );
}

function wrongImages(scores, labels, multilabel, threshold) {
  const bad = scores.filter((image) => {
    const want = truth(image, labels).sort().join();
    return predictedAt(image.predictions, multilabel, threshold).sort().join() !== want;
  });
  if (!bad.length) return h("p", { class: "muted" }, "None at this threshold.");
  return h(
    "div",
    { class: "grid" },
    bad.map((image) =>
      h(
        "div",
        { class: "tile wrong-image" },
        h("img", { src: image.thumbnailUri, alt: "" }),
        h("div", { class: "caption" }, `tagged: ${(image.tags || []).map((t) => t.tagName).join(", ") || "none"}`),
        image.predictions.slice(0, 3).map((p) => h("div", { class: "caption" }, `${p.tagName} ${pct(p.probability)}`)),
      ),
    ),
  );
}

// -- publish and export ----------------------------------------------------------------------------------------

function copyButton(text) {
  return h(
    "button",
    {
      type: "button",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(text);
          notify("Copied");
        } catch (_) {
          notify("Select the text and copy it (the browser refused clipboard access)", true);
        }
      },
    },
    "Copy",
  );
}

function publishPanel(project, iteration, iterations) {
  const section = h("section", { id: "publish" }, h("h2", {}, "Publish"));
  const reload = () => route();
  if (iteration.publishName) {
    const url = `${location.origin}/customvision/v3.1/prediction/${project.id}/classify/iterations/${iteration.publishName}/image`;
    const curl = `curl -X POST -H "Prediction-Key: $PREDICTION_KEY" -H "Content-Type: application/octet-stream" --data-binary @image.jpg "${url}"`;
    section.append(
      h("p", {}, "Published as ", h("b", { id: "published-name" }, iteration.publishName)),
      h("div", { class: "row" }, "Prediction URL ", h("code", { id: "prediction-url" }, url), copyButton(url)),
      h("div", { class: "row" }, "Header ", h("code", {}, "Prediction-Key: <the portal's prediction key>")),
      h("div", { class: "row" }, h("pre", { id: "curl" }, curl), copyButton(curl)),
      h(
        "button",
        {
          id: "unpublish",
          class: "danger",
          onclick: guarded(async () => {
            await api("DELETE", `/projects/${project.id}/iterations/${iteration.id}/publish`);
            notify(`${iteration.name} unpublished`);
            reload();
          }),
        },
        "Unpublish",
      ),
    );
  } else {
    // Names other iterations hold: publishing under one of them (with "replace") swaps the model a running
    // scorer serves under that name, e.g. the camera's.
    const taken = iterations.filter((it) => it.publishName).map((it) => [it.publishName, it.name]);
    const name = h("input", { id: "publish-name", value: iteration.name.replace(/\s+/g, ""), list: "publish-names" });
    const overwrite = h("input", { type: "checkbox", id: "publish-overwrite" });
    section.append(
      h("datalist", { id: "publish-names" }, taken.map(([n, by]) => h("option", { value: n }, `now ${by}`))),
      h(
        "div",
        { class: "row" },
        h("label", {}, "Name ", name),
        taken.length ? h("label", {}, overwrite, " replace the iteration published under this name") : null,
        h(
          "button",
          {
            class: "primary",
            id: "publish-button",
            onclick: guarded(async () => {
              await api("POST", `/projects/${project.id}/iterations/${iteration.id}/publish`, {
                query: { publishName: name.value, predictionId: "local", overwrite: overwrite.checked ? "true" : null },
              });
              notify(`${iteration.name} published as ${name.value}`);
              reload();
            }),
          },
          "Publish",
        ),
      ),
    );
  }
  section.append(exportPanel(project, iteration));
  return section;
}

function exportPanel(project, iteration) {
  const box = h("div", { id: "export" }, h("h2", {}, "Export"));
  if (!iteration.exportable) {
    box.append(h("p", { class: "muted" }, "Export needs a compact domain: switch the project's domain and train again."));
    return box;
  }
  const links = h("ul", { id: "exports" });
  const flavor = h(
    "select",
    { id: "export-flavor" },
    h("option", { value: "" }, "ONNX"),
    h("option", { value: "ONNX10" }, "ONNX 1.0"),
    h("option", { value: "ONNX12" }, "ONNX 1.2"),
    h("option", { value: "Int8" }, "ONNX int8 (quantized)"),
  );
  const show = async () => {
    const exports = await api("GET", `/projects/${project.id}/iterations/${iteration.id}/export`);
    const name = (e) => `${e.platform}${e.flavor ? " " + e.flavor : ""}`;
    links.replaceChildren(
      ...exports.map((e) =>
        h("li", {}, e.status === "Done" ? h("a", { href: e.downloadUri, download: "" }, `Download ${name(e)} (zip)`) : `${name(e)}: ${e.status}`),
      ),
    );
    if (exports.some((e) => e.status === "Exporting")) later(() => show().catch(() => {}), 2000);
  };
  box.append(
    h(
      "div",
      { class: "row" },
      flavor,
      h(
        "button",
        {
          id: "export-onnx",
          onclick: guarded(async () => {
            const query = { platform: "ONNX", flavor: flavor.value };
            await api("POST", `/projects/${project.id}/iterations/${iteration.id}/export`, { query });
            await show();
          }),
        },
        "Export",
      ),
    ),
    links,
  );
  show().catch(() => {});
  return box;
}

// -- quick test ------------------------------------------------------------------------------------------------

async function quickTestView(project, body) {
  const iterations = (await api("GET", `/projects/${project.id}/iterations`)).filter((it) => it.status === "Completed");
  if (!iterations.length) {
    body.replaceChildren(h("section", {}, h("p", { class: "muted" }, "No trained iteration yet: train first.")));
    return;
  }
  const select = h("select", { id: "quicktest-iteration" }, iterations.map((it) => h("option", { value: it.id }, it.name)));
  const file = h("input", { type: "file", id: "quicktest-file", accept: "image/*" });
  const url = h("input", { id: "quicktest-url", type: "url", placeholder: "https://…/image.jpg", size: 50 });
  const store = h("input", { type: "checkbox", id: "quicktest-store" });
  const result = h("div", { id: "quicktest-result" });
  const show = (answer, preview) =>
    result.replaceChildren(
      preview ? h("img", { src: preview, alt: "tested image", style: null, width: 220 }) : "",
      h(
        "table",
        { id: "quicktest-table" },
        h("tr", {}, h("th", {}, "Tag"), h("th", {}, "Probability")),
        answer.predictions.map((p) => h("tr", {}, h("td", {}, p.tagName), h("td", {}, pct(p.probability)))),
      ),
    );
  const query = () => ({ iterationId: select.value, store: store.checked ? "true" : "false" });
  file.addEventListener(
    "change",
    guarded(async () => {
      if (!file.files.length) return;
      const form = new FormData();
      form.append("imageData", file.files[0], file.files[0].name);
      const answer = await api("POST", `/projects/${project.id}/quicktest/image`, { query: query(), form });
      show(answer, URL.createObjectURL(file.files[0]));
    }),
  );
  const byUrl = h(
    "button",
    {
      id: "quicktest-url-button",
      onclick: guarded(async () => {
        const answer = await api("POST", `/projects/${project.id}/quicktest/url`, { query: query(), json: { url: url.value } });
        show(answer, null);
      }),
    },
    "Test URL",
  );
  body.replaceChildren(
    h(
      "section",
      {},
      h("h1", {}, "Quick test"),
      h("div", { class: "row" }, h("label", {}, "Iteration ", select), h("label", {}, store, " save to predictions")),
      h("div", { class: "row" }, h("label", {}, "Image file ", file)),
      h("div", { class: "row" }, h("label", {}, "or URL ", url), byUrl),
      result,
    ),
  );
}

// -- predictions -----------------------------------------------------------------------------------------------

const predictionState = { project: null, order: "Newest", source: "", selected: new Set() };
const CAMERA = "camera-capture"; // the application name the portal gives the camera's kept frames

async function predictionsView(project, body) {
  if (predictionState.project !== project.id) Object.assign(predictionState, { project: project.id, selected: new Set() });
  const tags = await api("GET", `/projects/${project.id}/tags`);
  const order = h(
    "select",
    {
      id: "prediction-order",
      onchange: () => {
        predictionState.order = order.value;
        predictionsView(project, body);
      },
    },
    h("option", { value: "Newest" }, "newest first"),
    h("option", { value: "Oldest" }, "oldest first"),
    h("option", { value: "Suggested" }, "least confident first"),
  );
  order.value = predictionState.order;
  const source = h(
    "select",
    {
      id: "prediction-source",
      onchange: () => {
        predictionState.source = source.value;
        predictionsView(project, body);
      },
    },
    h("option", { value: "" }, "every source"),
    h("option", { value: CAMERA }, "frames the camera kept"),
  );
  source.value = predictionState.source;
  // what the grid shows, as attributes: a test (or a user's script) can tell a finished reload from the last one
  const shown = { "data-order": predictionState.order, "data-source": predictionState.source || "all" };
  const grid = h("div", { class: "grid", id: "predictions", ...shown });
  const more = h("button", { id: "more-predictions", hidden: true }, "More");
  let token = { orderBy: predictionState.order, maxCount: PAGE, application: predictionState.source || null };
  const load = guarded(async () => {
    const page = await api("POST", `/projects/${project.id}/predictions/query`, { json: token });
    for (const p of page.results) grid.append(predictionTile(p));
    token = page.token;
    more.hidden = !token.continuation;
    if (!grid.children.length) grid.replaceWith(h("p", { class: "muted", id: "predictions", ...shown }, "No predictions stored yet."));
  });
  more.addEventListener("click", load);
  const tag = tagSelect(tags, "prediction-tag");
  const move = h(
    "button",
    {
      class: "primary",
      id: "move-predictions",
      onclick: guarded(async () => {
        const ids = [...predictionState.selected];
        if (!ids.length || !tag.value) return notify("Select predictions and a tag first", true);
        const moved = [];
        for (const part of chunks(ids, 64)) {
          const summary = await api("POST", `/projects/${project.id}/images/predictions`, {
            json: { images: part.map((id) => ({ id, tagIds: [tag.value] })) },
          });
          summary.images.forEach((r, i) => ["OK", "OKDuplicate"].includes(r.status) && moved.push(part[i]));
        }
        // what went into training leaves the predictions, as in the cloud's portal
        for (const part of chunks(moved, 64)) {
          await api("DELETE", `/projects/${project.id}/predictions`, { query: { ids: part.join(",") } });
        }
        predictionState.selected.clear();
        notify(`${moved.length} of ${ids.length} moved into training`, moved.length !== ids.length);
        predictionsView(project, body);
      }),
    },
    "Tag and add to training",
  );
  body.replaceChildren(
    h(
      "section",
      {},
      h("h1", {}, "Predictions"),
      h("p", { class: "muted" }, "Frames the camera kept, images sent to the prediction routes, quick tests saved."),
      h("div", { class: "row" }, h("label", {}, "Sort ", order), h("label", {}, "Show ", source), tag, move),
      grid,
      more,
    ),
  );
  await load();
}

function predictionTile(prediction) {
  const top = prediction.predictions[0];
  const tile = h(
    "div",
    { class: `tile${predictionState.selected.has(prediction.id) ? " selected" : ""}`, "data-id": prediction.id },
    h("img", { src: prediction.thumbnailUri, alt: top ? top.tagName : "" }),
    h("div", { class: "caption" }, top ? `${top.tagName} ${pct(top.probability)}` : "no prediction"),
    h("div", { class: "caption muted" }, when(prediction.created)),
  );
  tile.addEventListener("click", () => {
    if (predictionState.selected.has(prediction.id)) predictionState.selected.delete(prediction.id);
    else predictionState.selected.add(prediction.id);
    tile.classList.toggle("selected", predictionState.selected.has(prediction.id));
  });
  return tile;
}

const VIEWS = {
  images: imagesView,
  train: trainView,
  performance: performanceView,
  quicktest: quickTestView,
  predictions: predictionsView,
};

// -- start -----------------------------------------------------------------------------------------------------

async function start() {
  document.getElementById("logout").addEventListener("click", guarded(logout));
  window.addEventListener("hashchange", route);
  // A tab coming back to the front shows what other tabs or users changed meanwhile (selections are kept).
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && !document.getElementById("login")) route();
  });
  if (await loadSession()) route();
  else showLogin("");
}

start();
