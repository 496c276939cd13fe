"""Turn an HTML body into the text a reader sees, the text hidden by CSS, and its links."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

from gateway.content.stylesheet import apply_stylesheets

__all__ = ["DEFAULT_VISIBILITY", "HtmlText", "Link", "Visibility", "html_to_text"]

# Never rendered in a mail client's body view: not "hidden text", just not text.
_DROP = frozenset({"script", "style", "head", "template", "noscript", "title", "meta", "link",
                   "-comment", "object", "iframe", "svg", "math", "select", "button"})
_BLOCK = frozenset({"p", "div", "li", "ul", "ol", "tr", "table", "tbody", "thead", "tfoot", "h1",
                    "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "hr", "section", "article",
                    "header", "footer", "center", "dd", "dt", "dl", "address", "form", "nav",
                    "main", "aside", "figure", "figcaption", "body", "caption", "fieldset"})
_CELL = frozenset({"td", "th"})
_WS = re.compile(r"[ \t\r\n\f]+")
_STYLE_ELEMENT = re.compile(r"<style[\s>]", re.IGNORECASE)
# Attributes that never change visibility or colour: skip the style machinery for them.
_INERT = frozenset({"href", "class", "id", "width", "height", "align", "valign", "alt", "src",
                    "border", "cellpadding", "cellspacing", "target", "rel", "title", "name",
                    "lang", "dir", "role", "colspan", "rowspan", "type", "charset", "size"})



@dataclass(frozen=True, slots=True)
class Visibility:
    """When text counts as not displayed (legal.md §1.5, §4.2: flag font-size <= ~8px and
    colours near the background). The values come from rules/footer_words.toml."""

    min_font_px: float = 8.0  # text this size or smaller is hidden
    min_contrast: float = 1.5  # WCAG contrast ratio with the background below this: hidden
    min_offset_px: float = 1000.0  # pushed this far off the left or top edge: hidden


DEFAULT_VISIBILITY = Visibility()
_NAMED = {"white": (255, 255, 255), "black": (0, 0, 0), "red": (255, 0, 0), "green": (0, 128, 0),
          "blue": (0, 0, 255), "gray": (128, 128, 128), "grey": (128, 128, 128),
          "silver": (192, 192, 192), "yellow": (255, 255, 0), "navy": (0, 0, 128),
          "whitesmoke": (245, 245, 245), "snow": (255, 250, 250), "ivory": (255, 255, 240),
          "ghostwhite": (248, 248, 255), "lightgray": (211, 211, 211),
          "lightgrey": (211, 211, 211), "orange": (255, 165, 0), "transparent": (-1, -1, -1)}
_COLOR_RE = re.compile(r"#[0-9a-f]{3,8}\b|rgba?\([^)]*\)|\b[a-z]+\b")
_TRANSPARENT = (-1, -1, -1)
_FAINT = "text colour close to background"
_TINY = "font too small to read"
_Color = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Link:
    """An <a href>: target, anchor text and the anchor's span in the visible or hidden text."""

    href: str
    text: str
    start: int
    end: int
    hidden: bool = False


@dataclass(frozen=True, slots=True)
class HtmlText:
    """Visible text (block structure as line breaks), hidden text, links and why text was hidden."""

    visible: str
    hidden: str
    links: tuple[Link, ...]
    hidden_reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _State:
    hidden: str | None  # reason, or None when visible
    color: _Color
    background: _Color
    pre: bool
    vis: Visibility = DEFAULT_VISIBILITY
    font_px: float = 16.0  # the effective font size, inherited and overridable


class _Buffer:
    """Append-only text with whitespace collapsing and a known length (for link offsets)."""

    __slots__ = ("last", "length", "parts")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.last = "\n"

    def text(self, text: str, pre: bool) -> None:
        if not pre:
            text = _WS.sub(" ", text)
            if self.last in " \n" and text.startswith(" "):
                text = text[1:]
        if text:
            self.parts.append(text)
            self.length += len(text)
            self.last = text[-1]

    def brk(self, sep: str = "\n") -> None:
        if self.last == " " and self.parts:
            # Replace a trailing space by the break so lines don't end in blanks.
            tail = self.parts[-1][:-1]
            self.length -= 1
            if tail:
                self.parts[-1] = tail
            else:
                self.parts.pop()
            self.last = self.parts[-1][-1] if self.parts else "\n"
        if self.last != "\n" and (sep == "\n" or self.last != sep):
            self.parts.append(sep)
            self.length += 1
            self.last = sep

    def value(self) -> str:
        return "".join(self.parts).strip()


def _parse_color(value: str) -> _Color | None:
    value = value.strip().lower()
    m = _COLOR_RE.search(value)
    if not m:
        return None
    tok = m.group()
    if tok.startswith("#"):
        h = tok[1:]
        if len(h) in (3, 4):
            return (int(h[0] * 2, 16), int(h[1] * 2, 16), int(h[2] * 2, 16))
        if len(h) in (6, 8):
            if len(h) == 8 and h[6:] == "00":
                return _TRANSPARENT
            return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
        return None
    if tok.startswith("rgb"):
        nums = re.findall(r"[\d.]+%?", tok)
        if len(nums) < 3:
            return None
        try:
            if len(nums) >= 4 and float(nums[3].rstrip("%")) == 0:
                return _TRANSPARENT
            rgb = [float(x[:-1]) * 2.55 if x.endswith("%") else float(x) for x in nums[:3]]
        except ValueError:
            return None
        return (int(rgb[0]), int(rgb[1]), int(rgb[2]))
    return _NAMED.get(tok)


def _luminance(rgb: _Color) -> float:
    # WCAG 2 relative luminance of an sRGB colour
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


@lru_cache(maxsize=1024)
def contrast(a: _Color, b: _Color) -> float:
    """WCAG contrast ratio, 1 (same colour) to 21 (black on white)."""
    la, lb = _luminance(a), _luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def _font_size(value: str, parent_px: float) -> float | None:
    """A font-size value in px; em and % are relative to the parent's size."""
    m = re.match(r"\s*([\d.]+)\s*(px|pt|em|rem|%)?", value)
    if not m:
        return None
    try:
        size = float(m.group(1))
    except ValueError:
        return None
    unit = m.group(2) or "px"
    return size * {"px": 1.0, "pt": 4 / 3, "em": parent_px, "rem": 16.0,
                   "%": parent_px / 100}[unit]


def _offset_px(value: str) -> float | None:
    px = _font_size(value.lstrip().removeprefix("-"), 16.0)
    return None if px is None else (-px if value.lstrip().startswith("-") else px)


def _derive(parent: _State, tag: str, attrs: dict[str, str | None]) -> _State:
    """Apply one element's inline CSS and presentational attributes to the inherited state."""
    # Hidden by colour or size is decided afresh for each element: a light-on-dark cell
    # inside a dark box, or 14px text in a "font-size:0" cell (the whitespace trick of
    # responsive templates), is read. Any other reason is inherited by everything inside.
    hidden = None if parent.hidden in (_FAINT, _TINY) else parent.hidden
    color = parent.color
    background = parent.background
    vis = parent.vis
    font_px = parent.font_px
    pre = parent.pre or tag in ("pre", "textarea", "plaintext", "xmp")
    if "hidden" in attrs and hidden is None:
        hidden = "hidden attribute"
    if tag == "font" and attrs.get("color"):
        color = _parse_color(attrs["color"] or "") or color
    if attrs.get("bgcolor"):
        background = _parse_color(attrs["bgcolor"] or "") or background
    if attrs.get("background"):  # <td background="dark.jpg">: an image under the text
        background = _TRANSPARENT
    style = attrs.get("style")
    if style:
        height_zero = False
        overflow_hidden = False
        positioned = False
        offset = 0.0
        for decl in style.lower().split(";"):
            prop, _, val = decl.partition(":")
            prop = prop.strip()
            val = val.replace("!important", "").strip()
            if not val:
                continue
            if prop == "display" and val == "none":
                hidden = hidden or "display:none"
            elif prop == "visibility" and val in ("hidden", "collapse"):
                hidden = hidden or "visibility:hidden"
            elif prop == "opacity":
                try:
                    if float(val.rstrip("%")) <= (5 if val.endswith("%") else 0.05):
                        hidden = hidden or "opacity:0"
                except ValueError:
                    pass
            elif prop == "font-size":
                px = _font_size(val, parent.font_px)
                if px is not None:
                    font_px = px
            elif prop == "position" and val in ("absolute", "fixed"):
                positioned = True
            elif prop in ("left", "top"):  # moves the box only when it is positioned
                moved = _offset_px(val)
                if moved is not None:
                    offset = min(offset, moved)
            elif prop in ("text-indent", "margin-left", "margin-top"):
                moved = _offset_px(val)
                if moved is not None and moved <= -vis.min_offset_px:
                    hidden = hidden or "off-screen"
            elif prop == "color":
                color = _parse_color(val) or color
            elif prop in ("background-color", "background", "background-image"):
                # Under an image or a gradient the colour the reader sees is unknown: no
                # contrast is judged there (a colour beside it is only the fallback).
                image = "url(" in val or "gradient(" in val or "image-set(" in val
                if image:
                    background = _TRANSPARENT
                elif prop != "background-image":
                    background = _parse_color(val) or background
            elif prop in ("max-height", "height") and re.match(r"0(?:px|pt|em|%)?$", val):
                height_zero = True
            elif prop == "overflow" and val == "hidden":
                overflow_hidden = True
        if height_zero and overflow_hidden:
            hidden = hidden or "height:0;overflow:hidden"
        if positioned and offset <= -vis.min_offset_px:
            hidden = hidden or "off-screen"
    if hidden is None and font_px <= vis.min_font_px:
        hidden = _TINY
    if hidden is None and (color == _TRANSPARENT or (
            background != _TRANSPARENT and contrast(color, background) < vis.min_contrast)):
        hidden = _FAINT
    return _State(hidden, color, background, pre, vis, font_px)


_TOP = _State(None, (0, 0, 0), (255, 255, 255), False)


@lru_cache(maxsize=4096)
def _derive_cached(parent: _State, tag: str, attrs: tuple[tuple[str, str | None], ...]) -> _State:
    # Marketing HTML repeats the same few inline styles on every row: parse each once.
    return _derive(parent, tag, dict(attrs))


# ---------------------------------------------------------------------------------------------
# Fast path over lexbor's serialisation of the body.
#
# The serialiser writes canonical markup: every element as <name attr="value"...> ... </name>
# (void elements without an end tag), attribute values double-quoted with & " < > and U+00A0
# escaped, text with & < > and U+00A0 escaped, comments as <!--data-->. So outside comments and
# raw-text elements every "<" starts a tag and every ">" ends one, and splitting at "<" yields
# exactly the enter/exit events of a DOM walk. The renderer below replays _walk's rules on those
# events and defers whitespace collapsing to one pass over the joined text, using noncharacter
# markers for breaks and link ends. Anything it does not model returns None and _walk runs.

_VOID = frozenset({"area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr",
                   "img", "input", "keygen", "link", "meta", "param", "source", "track", "wbr"})
# Raw-text elements (serialised unescaped), preformatted text, foreign content: left to _walk.
_DECLINE = re.compile(r"<(?:script|iframe|noembed|noframes|xmp|plaintext|pre|textarea|listing|"
                      r"svg|math)[\s>]")
# Comments (their data never holds "-->") and <style> elements (RAWTEXT: never "</style>")
# in one leftmost pass, so a "<style>" inside a comment or "<!--" inside a style cannot
# start a match that runs past the construct it is in.
_NOT_TEXT = re.compile(r"<!--.*?-->|<style(?:\s[^>]*)?>.*?</style>", re.DOTALL)
_TAG = re.compile(r'([^\s/>="]+)((?:\s[^\s/>="]+="[^"]*")*)')
_ATTR = re.compile(r'\s([^\s/>="]+)="([^"]*)"')
_NL = "\ufdd0"  # block boundary / <br>: buf.brk()
_SP = "\ufdd1"  # end of a table cell: buf.brk(" ")
_LS = "\ufdd2"  # start of a link
_LE = "\ufdd3"  # end of a link
_MARKS = (_NL, _SP, _LS, _LE)
# Runs of collapsible whitespace and markers; starts with a class so sre can skip to it in C.
_RUN = re.compile("([ \t\r\n\f\ufdd0-\ufdd3][ \t\r\n\f\ufdd0-\ufdd3]*)")
_ENTITY = re.compile("&(amp|lt|gt|quot|nbsp);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "nbsp": "\xa0"}

# A serialised tag's meaning, cached by its text (templates repeat the same tags on every row):
# (_CLOSE, name) for an end tag; (_SKIP, name, void) for an element _walk drops with its
# content; (_OPEN, name, markers on entering, marker on leaving, href, attrs for _derive,
# void) for any other element.
_OPEN, _CLOSE, _SKIP = 0, 1, 2
_TagInfo = tuple[Any, ...]
_TAGS: dict[str, _TagInfo | None] = {}
_TAGS_MAX = 8192


def _unescape(text: str) -> str:
    if "&" not in text:
        return text
    return _ENTITY.sub(lambda m: _ENTITIES[m.group(1)], text)


def _classify(tagtext: str) -> _TagInfo | None:
    """Parse one serialised tag (without < >); None when it is not one the fast path models."""
    if tagtext.startswith("/"):
        name = tagtext[1:]
        return (_CLOSE, name) if _TAG.fullmatch(name) else None
    m = _TAG.fullmatch(tagtext)
    if m is None:
        return None
    name = m.group(1)
    void = name in _VOID
    if name in _DROP:
        return (_SKIP, name, void)
    attrs: dict[str, str | None] = {}
    if m.group(2):
        for am in _ATTR.finditer(m.group(2)):
            attrs.setdefault(am.group(1), _unescape(am.group(2)))
    href = attrs.get("href") if name == "a" else None
    derive = tuple(attrs.items()) if attrs and not _INERT.issuperset(attrs) else None
    # _walk: <br> breaks once; a block breaks on entering and on leaving (twice at once for a
    # void block such as <hr>); a cell ends with a space.
    if name == "br":
        enter, leave = _NL, ""
    elif name in _BLOCK:
        enter, leave = (_NL + _NL, "") if void else (_NL, _NL)
    elif name in _CELL:
        enter, leave = ("", _SP)
    else:
        enter, leave = "", ""
    if void:
        enter, leave = enter + leave, ""
    return (_OPEN, name, enter, leave, href.strip() if href else None, derive, void)


def _render_serialized(markup: str, top: _State = _TOP) -> HtmlText | None:
    """Render lexbor's serialisation of the body exactly as _walk would, or None to decline."""
    if _DECLINE.search(markup) or any(mark in markup for mark in _MARKS):
        return None
    if "<!--" in markup or "<style" in markup:
        markup = _NOT_TEXT.sub("", markup)
    pieces = markup.split("<")
    if pieces[0]:
        return None
    tags = _TAGS
    if len(tags) > _TAGS_MAX:
        tags.clear()
    visible: list[str] = []
    hidden: list[str] = []
    reasons: dict[str, None] = {}
    # Links in the order they open: [href, hidden, nth _LS of its stream, nth _LE of it].
    links: list[list[Any]] = []
    n_starts = [0, 0]  # _LS/_LE markers written so far to (visible, hidden)
    n_ends = [0, 0]
    state = top
    out = visible  # the stream text goes to in the current state
    # Open elements: (name, state outside, stream outside, stream inside, leave marker, link).
    stack: list[tuple[str, _State, list[str], list[str], str, list[Any] | None]] = []
    push = stack.append
    pop = stack.pop
    skip: list[str] = []  # names of open elements inside a dropped subtree
    derived: dict[tuple[int, str], _State] = {}
    for piece in pieces[1:]:
        tagtext, sep, text = piece.partition(">")
        if not sep:
            return None
        info = tags.get(tagtext)
        if info is None:
            if tagtext in tags:
                return None
            info = tags[tagtext] = _classify(tagtext)
            if info is None:
                return None
        event = info[0]
        if skip:
            if event == _CLOSE:
                if skip.pop() != info[1]:
                    return None
            elif (event == _SKIP and not info[2]) or (event == _OPEN and not info[6]):
                skip.append(info[1])
            if skip:
                continue  # still inside the dropped element: its text is not rendered
            # The dropped element just ended: the text after it belongs to its parent.
        elif event == _CLOSE:
            if not stack:
                return None
            name, state, out, inside, leave, link = pop()
            if name != info[1]:
                return None
            if link is not None:
                inside.append(_LE)
                h = inside is hidden
                link[3] = n_ends[h]
                n_ends[h] += 1
            if leave:
                inside.append(leave)
        elif event == _SKIP:
            if not info[2]:
                skip.append(info[1])
                continue
        else:
            _ev, name, enter, leave, href, derive, void = info
            cur = state
            inside = out
            if derive is not None:
                key = (id(state), tagtext)
                got = derived.get(key)
                if got is None:
                    got = derived[key] = _derive_cached(state, name, derive)
                cur = got
                if cur.hidden:
                    inside = hidden
                    if not state.hidden:
                        reasons[cur.hidden] = None
                else:
                    inside = visible  # visible again, e.g. light text in a dark cell
            if enter:
                inside.append(enter)
            if not void:
                link = None
                if href is not None:
                    h = inside is hidden
                    inside.append(_LS)
                    link = [href, h, n_starts[h], -1]
                    n_starts[h] += 1
                    links.append(link)
                push((name, state, out, inside, leave, link))
                state = cur
                out = inside
        if text:
            out.append(text)
    if stack or skip:
        return None
    vis_text, vis_starts, vis_ends = _collapse(visible)
    hid_text, hid_starts, hid_ends = _collapse(hidden)
    found: list[tuple[tuple[bool, int, int], Link]] = []
    for href, is_hidden, s_ord, e_ord in links:
        text, s_pos, e_pos = ((hid_text, hid_starts, hid_ends) if is_hidden
                              else (vis_text, vis_starts, vis_ends))
        start = s_pos[s_ord]
        end = e_pos[e_ord]
        link_text = text[start:end].strip() if end > start else ""
        # _walk appends links as they close and stable-sorts by (hidden, start).
        found.append(((is_hidden, start, e_ord), Link(href, link_text, start, end, is_hidden)))
    found.sort(key=lambda item: item[0])
    return _result(vis_text, hid_text, [lk for _k, lk in found], tuple(reasons))


_LINK_MARK = re.compile("[\ufdd2\ufdd3]")
_RUNS: dict[str, str] = {}  # run of whitespace and markers -> its output (markers kept)


def _run_output(run: str) -> str:
    """What _Buffer makes of a run between two text characters, link markers kept in place.

    The run becomes "\n" if it holds a block break, else " " if it holds any whitespace or
    cell end, else nothing. A link marker records _Buffer.length when it was written: before
    the run's output if only markers preceded it in the run, after it otherwise.
    """
    out = ""
    before = ""
    after = ""
    for ch in run:
        if ch == _LS or ch == _LE:
            if out:
                after += ch
            else:
                before += ch
        elif ch == _NL:
            out = "\n"
        elif not out:
            out = " "
    return before + out + after


def _collapse(out: list[str]) -> tuple[str, list[int], list[int]]:
    """Apply _Buffer's whitespace and break rules to a marked stream; link marker positions."""
    text = _unescape("".join(out))
    parts = _RUN.split(text)
    if len(parts) > 1:
        cache = _RUNS
        if len(cache) > _TAGS_MAX:
            cache.clear()
        reps = [cache.get(run) for run in parts[1::2]]
        for i, rep in enumerate(reps):
            if rep is None:
                run = parts[2 * i + 1]
                reps[i] = cache[run] = _run_output(run)
        if not parts[0]:
            # At the very start nothing is written; link markers there all record 0.
            reps[0] = "".join(ch for ch in parts[1] if ch == _LS or ch == _LE)
        parts[1::2] = reps
    text = "".join(parts)
    starts: list[int] = []
    ends: list[int] = []
    if _LS in text or _LE in text:
        for k, m in enumerate(_LINK_MARK.finditer(text)):
            (starts if m.group() == _LS else ends).append(m.start() - k)
        text = text.replace(_LS, "").replace(_LE, "")
    return text, starts, ends


def html_to_text(html: str, visibility: Visibility = DEFAULT_VISIBILITY) -> HtmlText:
    """Render `html` to visible text, hidden text and links; never raises on bad markup."""
    top = _TOP if visibility == DEFAULT_VISIBILITY else dataclasses.replace(
        _TOP, vis=visibility)
    tree = LexborHTMLParser(html)
    if _STYLE_ELEMENT.search(html):
        apply_stylesheets(tree)  # class and id rules that hide text become inline style
    body = tree.body
    if body is not None:
        # Fast path: lexbor serialises the body in C into canonical, well-formed markup; one
        # Python step per tag of that string is ~10x cheaper than a step per DOM node.
        serialized = body.html
        if serialized:
            fast = _render_serialized(serialized, top)
            if fast is not None:
                return fast
    root = body or tree.root
    if root is None:
        return HtmlText("", "", ())
    return _walk(root, top)


def _walk(root: LexborNode, top: _State = _TOP) -> HtmlText:
    """The reference renderer: walk the DOM node by node (used when the fast path declines)."""
    visible = _Buffer()
    hidden = _Buffer()
    links: list[Link] = []
    reasons: dict[str, None] = {}
    # Explicit stack, not recursion: hostile mail can nest elements thousands deep.
    # Items: (node, state) to enter, or (None, exit-record) to close an element.
    stack: list[tuple[LexborNode | None, _State, tuple[str, int, str | None] | None]] = [
        (root, top, None)
    ]
    while stack:
        node, state, exit_rec = stack.pop()
        if node is None:
            assert exit_rec is not None
            kind, start, href = exit_rec
            buf = hidden if state.hidden else visible
            if href is not None:
                end = buf.length
                text = "".join(buf.parts)[start:end].strip() if end > start else ""
                links.append(Link(href, text, start, end, state.hidden is not None))
            if kind == "block":
                buf.brk()
            elif kind == "cell":
                buf.brk(" ")
            continue
        tag = node.tag
        if tag == "-text":
            buf = hidden if state.hidden else visible
            buf.text(node.text_content or "", state.pre)
            continue
        if tag is None or tag in _DROP:
            continue
        attrs = node.attributes
        cur = (_derive_cached(state, tag, tuple(attrs.items()))
               if (attrs and not _INERT.issuperset(attrs)) else state)
        if cur.pre != state.pre and tag == "pre":
            cur = dataclasses.replace(cur, pre=True)
        if cur.hidden and not state.hidden:
            reasons[cur.hidden] = None
        buf = hidden if cur.hidden else visible
        if tag == "br":
            buf.brk()
            continue
        block = tag in _BLOCK
        if block:
            buf.brk()
        href = attrs.get("href") if tag == "a" else None
        kind = "block" if block else "cell" if tag in _CELL else "inline"
        stack.append((None, cur, (kind, buf.length, href.strip() if href else None)))
        children = list(node.iter(include_text=True))
        for child in reversed(children):
            stack.append((child, cur, None))
    links.sort(key=lambda lk: (lk.hidden, lk.start))
    return _result("".join(visible.parts), "".join(hidden.parts), links, tuple(reasons))


def _result(visible: str, hidden: str, links: list[Link], reasons: tuple[str, ...]) -> HtmlText:
    # Only the end is stripped, so link offsets stay valid; a link that ran into the stripped
    # whitespace ends where the text now ends.
    visible, hidden = visible.rstrip(), hidden.rstrip()
    sizes = (len(visible), len(hidden))
    kept = tuple(
        lk if lk.end <= sizes[lk.hidden]
        else Link(lk.href, lk.text, min(lk.start, sizes[lk.hidden]), sizes[lk.hidden], lk.hidden)
        for lk in links
    )
    return HtmlText(visible, hidden, kept, reasons)
