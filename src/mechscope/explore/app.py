"""``mechscope.explore``: type a prompt, every view updates; click from a result to its cause.

One app (an ipywidgets layout around mechscope's own widgets) for any ``HookedModel``:

- a prompt box, an optional corrupted prompt, answer and wrong tokens; the next-token top-k;
- attention (:class:`~mechscope.widgets.AttentionPatterns`), the logit lens
  (:class:`~mechscope.widgets.LogitLens`), direct logit attribution per head and per component
  (:class:`~mechscope.widgets.Heatmap`), activation patching on request (a progress bar when
  the sweep takes over a second), and, for a ``SplicedModel``, its SAE features
  (:class:`~mechscope.widgets.TokenActivations`);
- linked selections: a head clicked in the attribution heatmap is focused in the attention
  view (and back); a patching cell clicked shows its layer and position in the logit lens;
  a token hovered in any per-position view is highlighted in all of them (``jslink``, in the
  page, so it works while the kernel is busy).

Typing is debounced (``debounce_s`` after the last keystroke) in the kernel; each request
takes a generation number and a result is shown only if it is still the newest, so a stale
result never overwrites a newer one. Bad input (an empty prompt, one longer than the context,
an answer not in the vocabulary, a corrupted prompt of another length) shows a message in the
app and leaves the panels at the last valid inputs; the model is never modified (every
analysis is the library's, which removes its hooks and leaves weights and mode as they were).
"""

from __future__ import annotations

import asyncio
import html
import time

import ipywidgets
import traitlets

from ._compute import InputError, Inputs, compute, patch, patch_sites
from ._panels import Panels, note, status_html, top_k_html

# On a slow model the app waits this fraction of the last computation's time after a keystroke
# (at least debounce_s) before recomputing.
SLOW_MODEL_WAIT = 0.25

_INPUTS = ("prompt", "corrupted", "answer", "wrong")


class ExploreApp(ipywidgets.VBox):
    """The live explorer (see the module docstring); build it with :func:`explore`.

    Python-observable traits (not synced: the page has its own text boxes):
    ``prompt``, ``corrupted``, ``answer``, ``wrong`` (setting one recomputes at once);
    ``top_k`` ``[(token, probability)]``; ``str_tokens``; ``message`` ("" when the inputs are
    valid); ``generation`` (the request whose result is shown); ``patched`` (True while the
    patching panel shows the current inputs). The panels are attributes: ``attention``,
    ``lens``, ``dla_heads``, ``dla_components``, ``patching`` (None until run), ``features``.
    """

    prompt = traitlets.Unicode("")
    corrupted = traitlets.Unicode("")
    answer = traitlets.Unicode("")
    wrong = traitlets.Unicode("")
    top_k = traitlets.List()
    str_tokens = traitlets.List()
    message = traitlets.Unicode("")
    generation = traitlets.Int(0)
    patched = traitlets.Bool(False)
    # Seconds of quiet after a keystroke before recomputing.
    debounce_s = traitlets.Float(0.03)

    def __init__(self, model, prompt: str, *, corrupted: str = "", answer: str = "",
                 wrong: str = "", k: int = 10, debounce_s: float = 0.03) -> None:  # fmt: skip
        self.model = model
        self.k = k
        self._gen = 0  # generation of the newest request
        self._timer: asyncio.TimerHandle | None = None
        self._last_compute_s = 0.0  # the last recompute's seconds (sets the typing wait)
        self._quiet = False  # True while the app itself writes its traits / boxes
        inputs = Inputs(prompt, corrupted, answer, wrong)
        try:
            snap = compute(model, inputs, k=k)
        except InputError as err:
            raise ValueError(f"explore: {err}") from None
        self._snap = snap
        self.panels = Panels(model, snap)
        self.boxes = {name: self._box(name, getattr(inputs, name)) for name in _INPUTS}
        self._message = note("", "ms-explore-message")
        self._status = ipywidgets.HTML()
        self._topk = ipywidgets.HTML()
        self._run = ipywidgets.Button(description="run activation patching", icon="play")
        self._run.add_class("ms-explore-run")
        self._run.on_click(lambda _button: self.run_patching())
        self._progress = ipywidgets.FloatProgress(0.0, min=0.0, max=1.0, description="patching")
        self._progress.layout.display = "none"
        self._patch_slot = ipywidgets.VBox([self._patching_note()])
        self.links: list[ipywidgets.widget_link.Link] = []
        super().__init__(self._layout(), layout=ipywidgets.Layout(width="100%"))
        self.add_class("ms-explore")
        self._quiet = True  # the inputs the first snapshot was computed from: no recompute
        for name in _INPUTS:
            setattr(self, name, getattr(inputs, name))
        self.debounce_s = debounce_s
        self._quiet = False
        self._show(snap, 0)
        self._link_tokens()

    # ---- the panels ----------------------------------------------------------------------------

    @property
    def attention(self):
        return self.panels.attention

    @property
    def lens(self):
        return self.panels.lens

    @property
    def dla_heads(self):
        return self.panels.dla_heads

    @property
    def dla_components(self):
        return self.panels.dla_components

    @property
    def patching(self):
        return self.panels.patching

    @property
    def features(self):
        return self.panels.features

    def _box(self, name: str, value: str) -> ipywidgets.Text:
        hints = {
            "prompt": "type a prompt",
            "corrupted": "same length, for patching",
            "answer": "default: the top prediction",
            "wrong": "optional: scores answer - wrong",
        }
        box = ipywidgets.Text(
            value=value,
            description=name,
            placeholder=hints[name],
            continuous_update=True,
            layout=ipywidgets.Layout(width="100%" if name in ("prompt", "corrupted") else "32%"),
        )
        box.add_class(f"ms-explore-{name}")
        box.observe(self._typed, names="value")
        return box

    def _layout(self) -> list:
        p = self.panels
        unavailable = self._snap.unavailable
        lens = p.lens or note(f"logit lens: {unavailable.get('lens', 'unavailable')}", "ms-note")
        dla = [w for w in (p.dla_heads, p.dla_components) if w is not None] or [
            note(f"direct logit attribution: {unavailable.get('dla', 'unavailable')}", "ms-note")
        ]
        wrap = ipywidgets.Layout(flex_flow="row wrap", align_items="flex-start", width="100%")
        rows = [
            self.boxes["prompt"],
            self.boxes["corrupted"],
            ipywidgets.HBox([self.boxes["answer"], self.boxes["wrong"]]),
            self._message,
            self._status,
            ipywidgets.HBox([self._topk, ipywidgets.VBox(dla)], layout=wrap),
            ipywidgets.HBox([p.attention, lens], layout=wrap),
            ipywidgets.VBox([ipywidgets.HBox([self._run, self._progress]), self._patch_slot]),
        ]
        if p.features is not None:
            rows.append(p.features)
        return rows

    def _patching_note(self) -> ipywidgets.HTML:
        if self._snap.corrupted_tokens is None:
            text = "Type a corrupted prompt of the same token length to run activation patching."
        elif self.patched:
            text = "The inputs changed: run activation patching again."
        else:
            text = "Run activation patching to sweep the corrupted prompt."
        return note(text, "ms-note")

    def _link_tokens(self) -> None:
        """Hovering a position in one per-position view highlights it in all (in the page)."""
        for link in self.links:
            link.unlink()
        hub, *rest = self.panels.token_views()
        self.links = [
            ipywidgets.jslink((hub, "highlight_token"), (w, "highlight_token")) for w in rest
        ]

    # ---- requests ------------------------------------------------------------------------------

    def _typed(self, change) -> None:
        """A text box changed (a keystroke in the page): recompute after ``debounce_s`` quiet."""
        if self._quiet:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a script, a test): no keystrokes to wait for
            self._commit()
            return
        # A slow model waits longer: a pause mid-word must not start a computation the next
        # keystroke makes stale (the kernel cannot take the keystroke until it finishes).
        wait = max(self.debounce_s, SLOW_MODEL_WAIT * self._last_compute_s)
        self._timer = loop.call_later(wait, self._commit)

    def _commit(self) -> None:
        """The boxes' values become the app's inputs: one recompute for all of them."""
        self._timer = None
        values = {name: box.value for name, box in self.boxes.items()}
        if all(getattr(self, name) == v for name, v in values.items()):
            return
        self._quiet = True
        try:
            for name, value in values.items():
                setattr(self, name, value)
        finally:
            self._quiet = False
        self._recompute()

    @traitlets.observe(*_INPUTS)
    def _input_changed(self, change) -> None:
        if self._quiet:
            return
        box = self.boxes[change["name"]]
        if box.value != change["new"]:
            self._quiet = True
            box.value = change["new"]
            self._quiet = False
        self._recompute()

    def _recompute(self) -> None:
        self._gen += 1
        gen = self._gen
        inputs = Inputs(self.prompt, self.corrupted, self.answer, self.wrong)
        start = time.perf_counter()
        try:
            snap = compute(self.model, inputs, k=self.k)
        except InputError as err:
            self._say(str(err))
            return
        except Exception as err:  # noqa: BLE001 (the app shows it: never a traceback)
            self._say(f"Could not compute this prompt: {type(err).__name__}: {err}")
            return
        self._last_compute_s = time.perf_counter() - start
        if gen == self._gen:  # a newer request may have been computed meanwhile
            self._show(snap, gen)

    def _say(self, text: str) -> None:
        self.message = text
        self._message.value = (
            f'<div class="ms-explore-message" style="color:#c92a2a;white-space:pre-wrap">'
            f"{html.escape(text)}</div>"
        )

    def _show(self, snap, gen: int) -> None:
        """Put ``snap`` on screen (request ``gen``)."""
        self._snap = snap
        if gen:
            self.panels.update(snap)
        self.top_k = list(snap.top)
        self.str_tokens = list(snap.str_tokens)
        self._topk.value = top_k_html(snap, gen)
        self._status.value = status_html(snap, gen)
        self._say(snap.warning)
        self._patch_slot.children = [self._patching_note()]  # a sweep of older inputs is stale
        self.patched = False
        self.generation = gen

    # ---- activation patching -------------------------------------------------------------------

    def run_patching(self) -> None:
        """Sweep the corrupted prompt (``resid_pre``, ``attn_out``, ``mlp_out`` where the model
        has them) and show it; the progress bar appears when the sweep takes over a second."""
        snap, gen = self._snap, self._gen
        sites = patch_sites(self.model)
        bar = self._progress
        bar.value = 0.0
        # Shown from the start when the sweep will likely take > 1 s (one forward per layer and
        # site is a floor), else only once the sites done so far say it will.
        guess = snap.seconds * self.model.cfg.n_layers * len(sites)
        bar.layout.display = None if guess > 1.0 else "none"

        def progress(done: int, total: int, seconds: float) -> None:
            bar.value = done / total
            bar.description = f"{done}/{total} sites"
            if seconds * total / done > 1.0:
                bar.layout.display = None

        try:
            values = patch(self.model, snap, progress)
        except InputError as err:
            self._say(str(err))
            return
        except Exception as err:  # noqa: BLE001 (shown in the app)
            self._say(f"Activation patching failed: {type(err).__name__}: {err}")
            return
        finally:
            bar.layout.display = "none"
        if gen != self._gen:  # the inputs changed while it ran: this result is stale
            return
        new = self.panels.patching is None
        heatmap = self.panels.patching_widget(values, sites, snap)
        if new:
            heatmap.observe(self._patch_clicked, names="selected")
            self._link_tokens()
        self._patch_slot.children = [heatmap]
        self._say("")
        self.patched = True

    def _patch_clicked(self, change) -> None:
        """A patching cell ``[site, layer, pos]`` was clicked: the lens shows that stream."""
        sel = list(change["new"])
        lens = self.panels.lens
        if len(sel) != 3 or lens is None:
            return
        site = self.panels.patching.panel_titles[sel[0]]
        lens.selected = [self.panels.lens_row(site, sel[1]), sel[2]]

    def __repr__(self) -> str:
        return (
            f"ExploreApp(model={type(self.model).__name__}, prompt={self.prompt!r}, "
            f"tokens={len(self.str_tokens)}, generation={self.generation}, "
            f"message={self.message!r})"
        )


def explore(model, prompt: str = "", *, corrupted: str = "", answer: str = "", wrong: str = "",
            k: int = 10, debounce_s: float = 0.03) -> ExploreApp:  # fmt: skip
    """Explore ``model`` live: type a prompt and every view updates (see the module docstring).

    Args:
        model: any HookedModel with next-token logits (a zoo model, ``mechscope.wrap(...)``,
            a ``mechscope.splice(...)`` model: then its SAE features get a panel too).
        prompt: the text to start from.
        corrupted: a prompt of the same token length to patch from (optional).
        answer: the token whose logit DLA and patching score (default: the top prediction).
        wrong: scores ``logit(answer) - logit(wrong)`` (default: none, or the corrupted
            prompt's top prediction when there is a corrupted prompt).
        k: how many next-token predictions to list.
        debounce_s: seconds of quiet after a keystroke before recomputing (at least; on a
            slow model a quarter of the last computation's time, so that a pause mid-word
            does not start work the next keystroke makes stale).

    Returns:
        An :class:`ExploreApp` (display it; drive it from Python by setting ``app.prompt``).

    Example::

        app = mechscope.explore(mechscope.load("induction-2l"), "red fox sun red fox")
        app  # then type
        app.prompt = "cat dog cat"; app.top_k[:3]
    """
    return ExploreApp(
        model, prompt, corrupted=corrupted, answer=answer, wrong=wrong, k=k, debounce_s=debounce_s
    )
