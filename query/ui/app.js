// The cairn lineage page: a thread picker, the checkpoint tree of a thread
// drawn as a graph, a checkpoint's state and pending writes, and the diff of
// two checkpoints. It reads only the /v1 API of the service that serves it,
// with the bearer token the user gives (kept in this tab's sessionStorage)
// and the min_seq of the page's address (#thread=..&min_seq=..), so it
// follows the API's auth and read-your-writes rules. No other origin.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
const ROW = 34, LANE = 22, PAD = 18, MAX_NODES = 10000;

const state = {
  token: sessionStorage.getItem('cairn.token') || '',
  minSeq: '',        // from the address: a sequence or "head"
  thread: '',
  ns: '',
  nodes: [],         // every namespace, newest first
  forks: [],         // checkpoints of other threads forked from this one
  selected: null,    // checkpoint id
  comparing: false,  // the next click diffs against the selection
  threadsNext: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function status(text, isError) {
  const s = $('status');
  s.textContent = text || '';
  s.classList.toggle('error', !!isError);
}

function readHash() {
  const h = new URLSearchParams(location.hash.slice(1));
  return { thread: h.get('thread') || '', ns: h.get('ns') || '', checkpoint: h.get('checkpoint') || '', minSeq: h.get('min_seq') || '' };
}

function writeHash() {
  const h = new URLSearchParams();
  if (state.thread) h.set('thread', state.thread);
  if (state.ns) h.set('ns', state.ns);
  if (state.selected) h.set('checkpoint', state.selected);
  if (state.minSeq) h.set('min_seq', state.minSeq);
  history.replaceState(null, '', '#' + h.toString());
}

class AuthError extends Error {}

// api reads path (segments are escaped by the caller) with query
// parameters. It sends the token and min_seq, waits out 503 answers
// (read-your-writes not yet satisfied) and turns 401 into a token prompt.
async function api(path, query, threadScoped) {
  const u = new URL('../v1/' + path, location.href);
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null) u.searchParams.set(k, v);
  if (state.minSeq && (threadScoped || state.minSeq !== 'head')) u.searchParams.set('min_seq', state.minSeq);
  const headers = {};
  if (state.token) headers.Authorization = 'Bearer ' + state.token;
  for (let attempt = 0; ; attempt++) {
    const resp = await fetch(u, { headers });
    const body = await resp.json().catch(() => ({}));
    if (resp.ok) return body;
    if (resp.status === 401) {
      $('token-form').hidden = false;
      $('token').focus();
      throw new AuthError(body.message || 'a bearer token is needed');
    }
    if (resp.status === 503 && attempt < 20) {
      const applied = body.applied_seq !== undefined ? ' (projected through ' + body.applied_seq + ')' : '';
      status('Waiting for the writers to catch up' + applied + '…');
      const wait = Number(resp.headers.get('Retry-After')) || 1;
      await new Promise((r) => setTimeout(r, Math.min(wait, 5) * 1000));
      continue;
    }
    throw new Error(body.message || resp.status + ' ' + resp.statusText);
  }
}

const seg = encodeURIComponent;
const threadPath = (t) => 'threads/' + (t === '.' ? '%2E' : t === '..' ? '%2E%2E' : seg(t));

// guarded runs fn and shows its failure in the status line.
async function guarded(what, fn) {
  try {
    await fn();
    status('');
  } catch (e) {
    if (e instanceof AuthError) status(e.message, true);
    else status(what + ': ' + e.message, true);
  }
}

// ---- Threads ----

async function loadThreads(more) {
  const q = { limit: 50, prefix: $('prefix').value || undefined };
  if (more && state.threadsNext) q.before_seq = state.threadsNext;
  const page = await api('threads', q, false);
  const ul = $('threads');
  if (!more) ul.replaceChildren();
  for (const t of page.threads) {
    const b = el('button', { type: 'button', 'data-thread': t.thread_id },
      el('span', { class: 'thread-id', text: t.thread_id }),
      el('span', { class: 'thread-meta', text: t.checkpoints + ' checkpoint' + (t.checkpoints === 1 ? '' : 's') +
        ' · latest ' + t.latest.checkpoint_id + ' · ' + when(t.latest.created_at) }));
    b.addEventListener('click', () => selectThread(t.thread_id, '', ''));
    ul.append(el('li', t.thread_id === state.thread ? { class: 'current' } : {}, b));
  }
  state.threadsNext = page.next_before_seq;
  $('more-threads').hidden = !page.next_before_seq;
}

function when(ts) {
  const d = new Date(ts);
  return isNaN(d) ? ts : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

// ---- Tree ----

async function selectThread(thread, ns, checkpoint) {
  state.thread = thread;
  state.ns = ns;
  state.selected = checkpoint || null;
  state.comparing = false;
  for (const li of $('threads').children) li.classList.toggle('current', li.firstChild.dataset.thread === thread);
  $('thread-title').textContent = thread;
  writeHash();
  await guarded('tree', async () => {
    const nodes = [];
    let before;
    do {
      const page = await api(threadPath(thread) + '/tree', { limit: 10000, before_seq: before }, true);
      nodes.push(...page.nodes);
      before = page.next_before_seq;
    } while (before && nodes.length < MAX_NODES);
    const forks = await api(threadPath(thread) + '/forks', { limit: 1000 }, true);
    state.nodes = nodes;
    state.forks = forks.forks;
    const spaces = [...new Set(nodes.map((n) => n.checkpoint_ns))].sort();
    if (!spaces.includes(state.ns) && spaces.length) state.ns = spaces.includes('') ? '' : spaces[0];
    const sel = $('ns');
    sel.replaceChildren(...spaces.map((s) => el('option', { value: s, text: s === '' ? '(root)' : s })));
    sel.value = state.ns;
    $('ns-label').hidden = spaces.length < 2;
    drawTree();
    if (state.selected) await showCheckpoint(state.selected);
    else $('detail').replaceChildren(el('p', { class: 'hint', text: 'Nothing selected.' }));
  });
}

// drawTree lays the namespace's checkpoints out in rows, newest on top,
// and in lanes: a child continues its parent's lane; every further child
// (a fork) opens a lane of its own.
function drawTree() {
  const nodes = state.nodes.filter((n) => n.checkpoint_ns === state.ns).sort((a, b) => a.seq - b.seq);
  const byId = new Map(nodes.map((n) => [n.checkpoint_id, n]));
  const lane = new Map(), continued = new Set();
  let lanes = 0;
  for (const n of nodes) {
    const p = n.parent_checkpoint_id;
    if (p && byId.has(p) && !continued.has(p)) {
      lane.set(n.checkpoint_id, lane.get(p));
      continued.add(p);
    } else {
      lane.set(n.checkpoint_id, lanes++);
    }
  }
  const forksOf = new Map();
  for (const f of state.forks) {
    if (!f.forked_from || f.forked_from.checkpoint_ns !== state.ns) continue;
    const k = f.forked_from.checkpoint_id;
    if (!forksOf.has(k)) forksOf.set(k, []);
    forksOf.get(k).push(f);
  }
  const newest = nodes.length ? nodes[nodes.length - 1].checkpoint_id : null;
  const rows = nodes.length, laneX = (l) => PAD + l * LANE, rowY = (i) => PAD + (rows - 1 - i) * ROW;
  const textX = PAD + Math.max(lanes, 1) * LANE + 10, forkX = textX + 330;
  const widest = Math.max(0, ...[...forksOf.values()].map((fs) => fs.reduce((w, f) => w + boxWidth('→ ' + f.thread_id + ' @ ' + f.checkpoint_id) + 6, 0)));
  const width = Math.max(forkX + widest + PAD, 520), height = PAD * 2 + Math.max(rows, 1) * ROW + 20;
  const g = svg('svg', { width, height, viewBox: '0 0 ' + width + ' ' + height, role: 'img', 'aria-label': 'checkpoint tree' });
  const edges = svg('g'), marks = svg('g');
  g.append(edges, marks);
  const pos = new Map(nodes.map((n, i) => [n.checkpoint_id, { x: laneX(lane.get(n.checkpoint_id)), y: rowY(i) }]));
  nodes.forEach((n) => {
    const at = pos.get(n.checkpoint_id);
    const p = n.parent_checkpoint_id;
    if (p && pos.has(p)) {
      const from = pos.get(p);
      const d = from.x === at.x ? `M${from.x},${from.y} L${at.x},${at.y}`
        : `M${from.x},${from.y} C${from.x},${from.y - ROW / 2} ${at.x},${from.y - ROW / 2} ${at.x},${Math.min(at.y, from.y - ROW / 2)} L${at.x},${at.y}`;
      edges.append(svg('path', { class: 'edge', d }));
    } else if (p) {
      edges.append(svg('path', { class: 'edge missing', d: `M${at.x},${at.y} L${at.x},${at.y + ROW * 0.6}` }));
    }
    const node = svg('g', { class: 'node', 'data-id': n.checkpoint_id, 'data-seq': n.seq, tabindex: 0 });
    if (n.checkpoint_id === newest) node.classList.add('newest');
    if (n.checkpoint_id === state.selected) node.classList.add('selected');
    node.append(svg('circle', { cx: at.x, cy: at.y, r: 7 }));
    const label = svg('text', { x: textX, y: at.y - 2 });
    label.textContent = n.checkpoint_id + (n.checkpoint_id === newest ? '  ' : '');
    if (n.checkpoint_id === newest) {
      const badge = svg('tspan', { class: 'badge' });
      badge.textContent = 'newest';
      label.append(badge);
    }
    const sub = svg('text', { class: 'sub', x: textX, y: at.y + 12 });
    sub.textContent = clip('seq ' + n.seq + ' · ' + when(n.created_at) + summary(n.metadata), 50);
    node.append(label, sub);
    node.addEventListener('click', (ev) => clickNode(n.checkpoint_id, ev.shiftKey));
    node.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') clickNode(n.checkpoint_id, ev.shiftKey); });
    marks.append(node);
    // Where this thread was forked from (a root naming its origin).
    if (n.forked_from && !p) {
      const o = n.forked_from, y = at.y + ROW * 0.55;
      edges.append(svg('path', { class: 'edge cross', d: `M${at.x},${at.y} L${at.x},${y}` }));
      marks.append(linkBox('origin-link', at.x - 6, y, '⤷ forked from ' + o.thread_id + ' @ ' + o.checkpoint_id, () => selectThread(o.thread_id, o.checkpoint_ns, o.checkpoint_id)));
    }
    // Forks other threads made from this checkpoint, in a column of their
    // own on the checkpoint's row.
    let x = forkX;
    for (const f of forksOf.get(n.checkpoint_id) || []) {
      const box = linkBox('fork-link', x, at.y - 12, '→ ' + f.thread_id + ' @ ' + f.checkpoint_id, () => selectThread(f.thread_id, f.checkpoint_ns, f.checkpoint_id));
      marks.append(box);
      x += Number(box.firstChild.getAttribute('width')) + 6;
    }
  });
  $('graph').replaceChildren(nodes.length ? g : el('p', { class: 'empty', text: 'No checkpoints in this namespace.' }));
  const branches = nodes.length ? lanes - nodes.filter((n) => !n.parent_checkpoint_id).length : 0;
  $('tree-info').textContent = nodes.length + ' checkpoints · ' + branches + ' fork' + (branches === 1 ? '' : 's') +
    (state.forks.length ? ' · ' + state.forks.length + ' forked into other threads' : '');
}

const boxWidth = (text) => Math.min(10 + text.length * 6.4, 360);
const clip = (text, n) => text.length > n ? text.slice(0, n - 1) + '…' : text;

function linkBox(cls, x, y, text, onClick) {
  const g = svg('g', { class: 'link ' + cls, tabindex: 0 });
  g.append(svg('rect', { x, y, width: boxWidth(text), height: 16, rx: 4 }));
  const t = svg('text', { x: x + 5, y: y + 12 });
  t.textContent = text;
  g.append(t);
  g.addEventListener('click', onClick);
  g.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') onClick(); });
  return g;
}

// summary shows a few scalar metadata fields next to a node.
function summary(meta) {
  if (!meta || typeof meta !== 'object') return '';
  const parts = [];
  for (const [k, v] of Object.entries(meta)) {
    if (k === 'forked_from' || (typeof v === 'object' && v !== null)) continue;
    parts.push(k + '=' + v);
    if (parts.length === 3) break;
  }
  return parts.length ? ' · ' + parts.join(' ') : '';
}

function markNodes() {
  for (const n of document.querySelectorAll('#graph .node')) {
    n.classList.toggle('selected', n.dataset.id === state.selected);
    n.classList.toggle('compare', state.comparing && n.dataset.id === state.selected);
  }
}

async function clickNode(id, shift) {
  if ((shift || state.comparing) && state.selected && state.selected !== id) {
    const from = state.selected;
    state.comparing = false;
    markNodes();
    await showDiff(from, id);
    return;
  }
  state.selected = id;
  state.comparing = false;
  writeHash();
  markNodes();
  await showCheckpoint(id);
}

// ---- Checkpoint ----

async function showCheckpoint(id) {
  await guarded('checkpoint', async () => {
    const cp = await api(threadPath(state.thread) + '/checkpoints/' + seg(id), { ns: state.ns }, true);
    const d = $('detail');
    const facts = el('dl', { class: 'facts' });
    const fact = (k, v) => facts.append(el('dt', { text: k }), el('dd', {}, v));
    fact('thread', cp.thread_id);
    if (cp.checkpoint_ns) fact('namespace', cp.checkpoint_ns);
    fact('parent', cp.parent_checkpoint_id || '(none)');
    fact('seq', String(cp.seq));
    fact('created', when(cp.created_at));
    fact('event', cp.event_id);
    const o = cp.metadata && cp.metadata.forked_from;
    if (o && o.thread_id && o.checkpoint_id) {
      const a = el('a', { class: 'thread-link', text: o.thread_id + ' @ ' + o.checkpoint_id });
      a.addEventListener('click', () => selectThread(o.thread_id, o.checkpoint_ns || '', o.checkpoint_id));
      fact('forked from', a);
    }
    const compare = el('button', { type: 'button', id: 'compare', text: 'compare with…' });
    compare.addEventListener('click', () => {
      state.comparing = true;
      markNodes();
      status('Click another checkpoint to compare ' + id + ' with it.');
    });
    const parts = [el('h3', { text: 'Checkpoint ' + cp.checkpoint_id }), facts, el('div', { class: 'actions' }, compare)];
    const st = cp.checkpoint || {};
    if (Array.isArray(st.messages)) {
      parts.push(el('h4', { text: 'Messages (' + st.messages.length + ')' }));
      const box = el('div', { id: 'messages' });
      st.messages.forEach((m) => box.append(message(m, '')));
      if (!st.messages.length) box.append(el('p', { class: 'empty', text: 'none' }));
      parts.push(box);
    }
    const rest = Object.fromEntries(Object.entries(st).filter(([k]) => k !== 'messages'));
    parts.push(el('h4', { text: 'State' }), el('pre', { id: 'state', text: JSON.stringify(rest, null, 2) }));
    parts.push(el('h4', { text: 'Metadata' }), el('pre', { text: JSON.stringify(cp.metadata, null, 2) }));
    parts.push(el('h4', { text: 'Pending writes (' + cp.pending_writes.length + ')' }));
    if (cp.pending_writes.length) {
      const t = el('table', { id: 'writes' }, el('tr', {}, el('th', { text: 'task' }), el('th', { text: 'idx' }), el('th', { text: 'channel' }), el('th', { text: 'value' })));
      for (const w of cp.pending_writes) {
        t.append(el('tr', { class: 'write' }, el('td', { text: w.task_id + (w.task_path ? ' (' + w.task_path + ')' : '') }),
          el('td', { text: String(w.idx) }), el('td', { text: w.channel }), el('td', {}, el('code', { text: JSON.stringify(w.value) }))));
      }
      parts.push(t);
    } else {
      parts.push(el('p', { class: 'empty', text: 'none' }));
    }
    d.replaceChildren(...parts);
  });
}

function message(m, cls) {
  const role = (m && typeof m.role === 'string') ? m.role : 'message';
  let content = m && m.content;
  if (typeof content !== 'string') content = JSON.stringify(content);
  const box = el('div', { class: 'message role-' + role.replace(/[^a-z_-]/gi, '') + (cls ? ' ' + cls : ''), 'data-role': role },
    el('div', { class: 'role', text: role + (m && m.name ? ' · ' + m.name : '') }),
    el('div', { class: 'content', text: content || '' }));
  if (m && Array.isArray(m.tool_calls) && m.tool_calls.length) box.append(el('pre', { text: JSON.stringify(m.tool_calls, null, 2) }));
  return box;
}

// ---- Diff ----

async function showDiff(from, to) {
  await guarded('diff', async () => {
    const df = await api(threadPath(state.thread) + '/diff', { ns: state.ns, from, to }, true);
    const parts = [el('h3', { text: 'Diff ' + from + ' → ' + to }),
      el('p', { class: 'hint', text: 'seq ' + df.from.seq + ' → ' + df.to.seq + (df.truncated ? ' · cut at 10,000 changes' : '') })];
    parts.push(el('h4', { text: 'Messages added (' + df.messages.added.length + ')' }));
    const added = el('div', { id: 'messages-added' });
    df.messages.added.forEach((m) => added.append(message(m.message, 'msg-added')));
    parts.push(added);
    if (df.messages.removed.length) {
      parts.push(el('h4', { text: 'Messages removed (' + df.messages.removed.length + ')' }));
      const removed = el('div', { id: 'messages-removed' });
      df.messages.removed.forEach((m) => removed.append(message(m.message, 'msg-removed')));
      parts.push(removed);
    }
    parts.push(el('h4', { text: 'State changes (' + df.changes.length + ')' }), changes(df.changes, 'changes'));
    parts.push(el('h4', { text: 'Metadata changes (' + df.metadata_changes.length + ')' }), changes(df.metadata_changes, 'metadata-changes'));
    $('detail').replaceChildren(...parts);
  });
}

function changes(list, id) {
  if (!list.length) return el('p', { class: 'empty', id, text: 'none' });
  const t = el('table', { id }, el('tr', {}, el('th', { text: 'op' }), el('th', { text: 'path' }), el('th', { text: 'old' }), el('th', { text: 'new' })));
  const show = (v) => v === undefined ? '' : JSON.stringify(v);
  for (const c of list) {
    t.append(el('tr', { class: 'change op-' + c.op, 'data-op': c.op }, el('td', { text: c.op }), el('td', {}, el('code', { text: c.path || '/' })),
      el('td', {}, el('code', { text: show(c.old) })), el('td', {}, el('code', { text: show(c.new) }))));
  }
  return t;
}

// ---- Start ----

window.addEventListener('DOMContentLoaded', () => {
  const h = readHash();
  state.minSeq = h.minSeq;
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.token = $('token').value.trim();
    sessionStorage.setItem('cairn.token', state.token);
    $('token-form').hidden = true;
    status('');
    guarded('threads', () => loadThreads(false)).then(() => { if (state.thread) selectThread(state.thread, state.ns, state.selected); });
  });
  $('thread-filter').addEventListener('submit', (ev) => { ev.preventDefault(); guarded('threads', () => loadThreads(false)); });
  $('prefix').addEventListener('input', () => guarded('threads', () => loadThreads(false)));
  $('more-threads').addEventListener('click', () => guarded('threads', () => loadThreads(true)));
  $('ns').addEventListener('change', () => { state.ns = $('ns').value; state.selected = null; writeHash(); drawTree(); });
  guarded('threads', () => loadThreads(false)).then(() => { if (h.thread) selectThread(h.thread, h.ns, h.checkpoint); });
});

// An address edited by hand (or a link followed) picks its thread,
// checkpoint and min_seq.
window.addEventListener('hashchange', () => {
  const h = readHash();
  state.minSeq = h.minSeq;
  if (h.thread) selectThread(h.thread, h.ns, h.checkpoint);
});
