"""UI-format workflow (what ComfyUI's editor saves) → API-format prompt (what ``POST /prompt`` runs).

ComfyUI's backend only runs the API format (COMFYUI_NOTES §7.5); in the browser the frontend
converts with ``graphToPrompt``. :func:`ui_to_api` does the same for a headless runner, for flat
graphs (no subgraphs), following the frontend's rules (frontend 1.49.6: ``executionUtil.ts``,
``litegraphService.ts``, ``widgets.ts``, ``dynamicWidgets.ts``, ``uploadImage.ts``,
``ExecutableNodeDTO.ts``):

- **Widgets.** ``widgets_values`` is positional over the node's widget inputs, in the order of
  ``/object_info``'s ``input_order`` (required, then optional). Widget inputs are INT, FLOAT,
  STRING, BOOLEAN, combos (a list of options or ``"COMBO"``) and dynamic combos
  (``"COMFY_DYNAMICCOMBO_V3"``), unless marked ``forceInput``. V3 ``advanced=True`` inputs are
  widgets like any other.
- **Extra values that are not inputs.** An INT/FLOAT with ``control_after_generate`` in its
  options, or an INT named ``seed``/``noise_seed``, is followed by its "control after generate"
  value (``"fixed"``, ``"randomize"``, ...); a combo with ``control_after_generate`` by that value
  and a filter-list string. These are skipped. A media-upload combo (``image_upload`` ...) adds an
  ``upload`` button at the end; trailing values beyond the known widgets are ignored.
- **Dynamic combos.** The value picks an option; that option's widget inputs follow right after
  it, named ``"<combo>.<input>"`` (required, then optional), recursively.
- **Dict values.** A ``widgets_values`` dict (some custom nodes save one) maps by name.
- **Links.** ``inputs[i].link`` → the ``links`` entry → ``[str(origin_id), origin_slot]``; a link
  wins over a widget value of the same name. Links are followed through ``Reroute`` nodes; links
  from a ``PrimitiveNode`` are dropped because the primitive writes its value into the target's
  ``widgets_values``.
- **Modes.** Nodes with mode 2 (muted) or 4 (bypassed) are left out. A consumer of a bypassed
  node is connected through to the bypassed node's input of the same type (same slot first,
  then the first input of that type, as litegraph does); if there is none, or the source is
  muted, a required input raises :class:`WorkflowError`.
- **Frontend-only nodes** (``Note``, ``MarkdownNote``, ``Reroute``, ``PrimitiveNode``, ...) are left
  out; a type missing from ``object_info`` raises ``node 12 'Foo' is not installed in this ComfyUI``.
"""
from __future__ import annotations

from typing import Any

FRONTEND_ONLY = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode", "Comfy.GroupNode"})
MUTED, BYPASSED = 2, 4
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
SEED_NAMES = ("seed", "noise_seed")


class WorkflowError(ValueError):
    """The workflow cannot be converted: unknown node, subgraph, broken link, missing input."""


def _spec_type(spec) -> str:
    if isinstance(spec[0], list):
        return "COMBO"
    widget = _options(spec).get("widgetType")  # a MultiType input ("FLOAT,INT") is edited as this widget
    return str(widget) if widget else str(spec[0])


def _options(spec) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def is_widget(spec) -> bool:
    """Whether an /object_info input spec becomes a widget in the editor."""
    kind = _spec_type(spec)
    opts = _options(spec)
    if opts.get("forceInput") or opts.get("rawLink"):
        return False
    return kind in WIDGET_TYPES or kind == DYNAMIC_COMBO


def _extra_values(name: str, spec) -> int:
    """How many non-input values the editor stores after this widget's value."""
    kind, opts = _spec_type(spec), _options(spec)
    control = opts.get("control_after_generate")
    if kind == "COMBO":
        return 2 if control else 0
    if kind in ("INT", "FLOAT") and (control or (kind == "INT" and name in SEED_NAMES)):
        return 1
    return 0


def _ordered_inputs(section_specs: dict, order: dict | None) -> list[tuple[str, Any]]:
    """(name, spec) of required then optional inputs, in ``input_order`` when given."""
    out = []
    for section in ("required", "optional"):
        specs = section_specs.get(section) or {}
        names = list((order or {}).get(section) or specs.keys())
        names += [n for n in specs if n not in names]
        out += [(n, specs[n]) for n in names if n in specs]
    return out


def widget_slots(info: dict) -> list[tuple[str, Any]]:
    """The top-level widget inputs of a node, (name, spec), in the editor's widget order."""
    return [(n, s) for n, s in _ordered_inputs(info.get("input") or {}, info.get("input_order")) if is_widget(s)]


def _assign_widgets(values: list, slots: list[tuple[str, Any]], prefix: str, out: dict, pos: int,
                    missing: list | None = None) -> int:
    """Consume ``values[pos:]`` over ``slots``; returns the next position. Widgets left without a
    value are appended to ``missing``."""
    for name, spec in slots:
        full = f"{prefix}{name}"
        if pos >= len(values):
            if missing is not None:
                missing.append(full)
            continue
        value = values[pos]
        pos += 1
        out[full] = {"__value__": value} if isinstance(value, list) else value
        if _spec_type(spec) == DYNAMIC_COMBO:
            chosen = next((o for o in _options(spec).get("options", []) if o.get("key") == value), None)
            if chosen is not None:
                nested = [(n, s) for n, s in _ordered_inputs(chosen.get("inputs") or {}, None) if is_widget(s)]
                pos = _assign_widgets(values, nested, f"{full}.", out, pos, missing)
        pos += _extra_values(name, spec)
    return pos


def expected_widget_count(info: dict, values: list) -> int:
    """How many stored values the node's widgets take for these values (dynamic combos included)."""
    return _assign_widgets(values, widget_slots(info), "", {}, 0)


def _required_names(info: dict) -> set[str]:
    return set(((info.get("input") or {}).get("required") or {}).keys())


def ui_to_api(workflow: dict, object_info: dict, strict: bool = False) -> dict:
    """Convert a UI-format (litegraph) workflow to an API-format prompt.

    Args:
        workflow: the saved workflow (``nodes``, ``links``, ...), flat: no subgraphs.
        object_info: ``GET /object_info`` of the server that will run it.
        strict: also raise when a node's ``widgets_values`` has fewer values than its widgets, or
            values left over beyond them (other than the upload button's), e.g. a stale file.

    Returns:
        ``{node_id: {"class_type": ..., "inputs": {...}, "_meta": {"title": ...}}}`` with string ids.

    Raises:
        WorkflowError: unknown node type, subgraph, dangling link, a required input lost to a
            muted/bypassed node, or (strict) a widget count mismatch.
    """
    nodes = {int(n["id"]): n for n in workflow.get("nodes", [])}
    links = {}
    for link in workflow.get("links", []):
        if isinstance(link, dict):  # subgraph-style link objects
            links[int(link["id"])] = (link["origin_id"], link["origin_slot"], link.get("type"))
        else:
            links[int(link[0])] = (link[1], link[2], link[5] if len(link) > 5 else None)
    subgraphs = {s.get("id") for s in (workflow.get("definitions") or {}).get("subgraphs", [])}

    for node_id, node in nodes.items():
        kind = node.get("type")
        if kind in subgraphs:
            raise WorkflowError(f"node {node_id} is a subgraph; flatten it in the editor (Unpack Subgraph) first")
        if kind not in FRONTEND_ONLY and kind not in object_info and node.get("mode", 0) not in (MUTED, BYPASSED):
            raise WorkflowError(f"node {node_id} '{kind}' is not installed in this ComfyUI")

    def resolve(link_id, want_type, seen=()):
        """The live source [node_id, slot] of a link, or None when it comes to nothing."""
        if link_id is None:
            return None
        if link_id not in links:
            raise WorkflowError(f"link {link_id} is referenced but missing from the workflow's links")
        origin, slot, _ = links[link_id]
        origin = int(origin)
        if (origin, slot) in seen:
            raise WorkflowError(f"links loop through node {origin}")
        seen = (*seen, (origin, slot))
        src = nodes.get(origin)
        if src is None:
            raise WorkflowError(f"link {link_id} comes from node {origin}, which is not in the workflow")
        kind, mode = src.get("type"), src.get("mode", 0)
        if kind == "PrimitiveNode":
            return None  # its value is already in the target's widgets_values
        if mode == MUTED:
            return None
        if kind == "Reroute" or mode == BYPASSED:
            inputs = src.get("inputs") or []
            if kind == "Reroute":
                index = 0 if inputs else -1
            elif slot < len(inputs) and inputs[slot].get("type") == want_type:
                index = slot
            else:
                index = next((i for i, inp in enumerate(inputs) if inp.get("type") == want_type), -1)
            if index < 0:
                return None
            return resolve(inputs[index].get("link"), want_type, seen)
        return [str(origin), int(slot)]

    prompt: dict[str, dict] = {}
    for node_id, node in sorted(nodes.items()):
        kind, mode = node.get("type"), node.get("mode", 0)
        if kind in FRONTEND_ONLY or mode in (MUTED, BYPASSED):
            continue
        info = object_info[kind]
        inputs: dict[str, Any] = {}
        values = node.get("widgets_values")
        if isinstance(values, dict):
            for name, _spec in widget_slots(info):
                if name in values:
                    value = values[name]
                    inputs[name] = {"__value__": value} if isinstance(value, list) else value
        else:
            values = list(values or [])
            missing: list[str] = []
            used = _assign_widgets(values, widget_slots(info), "", inputs, 0, missing)
            if strict:
                upload = any(_options(s).get(k) for _, s in widget_slots(info)
                             for k in ("image_upload", "video_upload", "animated_image_upload"))
                if missing:
                    raise WorkflowError(f"node {node_id} '{kind}': widgets_values has {len(values)} values, "
                                        f"no value for {missing}")
                if len(values) - used > (1 if upload else 0):
                    raise WorkflowError(f"node {node_id} '{kind}': {len(values) - used} widgets_values left over "
                                        f"after its {used} widget values: {values[used:]}")
        for slot in node.get("inputs") or []:
            name = slot.get("name")
            if slot.get("link") is None:
                continue
            source = resolve(slot.get("link"), slot.get("type"))
            if source is not None:
                inputs[name] = source
            elif name in _required_names(info) and name not in inputs:
                raise WorkflowError(f"node {node_id} '{kind}': input '{name}' comes from a muted or bypassed node "
                                    "with nothing to pass through")
        entry = {"class_type": kind, "inputs": inputs}
        entry["_meta"] = {"title": node.get("title") or info.get("display_name") or kind}
        prompt[str(node_id)] = entry

    # like the frontend: drop links to nodes that are not in the prompt
    for entry in prompt.values():
        for name, value in list(entry["inputs"].items()):
            if isinstance(value, list) and len(value) == 2 and value[0] not in prompt:
                del entry["inputs"][name]
    return prompt


def find_nodes(prompt: dict, class_type: str) -> list[str]:
    """Ids of the API-prompt nodes of one class, in id order."""
    return sorted((k for k, v in prompt.items() if v.get("class_type") == class_type), key=_id_key)


def _id_key(node_id: str):
    return (0, int(node_id)) if str(node_id).isdigit() else (1, str(node_id))


__all__ = ["ui_to_api", "WorkflowError", "widget_slots", "is_widget", "expected_widget_count", "find_nodes",
           "FRONTEND_ONLY"]
