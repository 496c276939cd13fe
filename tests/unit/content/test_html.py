"""gateway.content.html: visible vs hidden text, block breaks, links with positions."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from gateway.content.html import Visibility, _render_serialized, _walk, contrast, html_to_text


def test_drops_non_rendered_and_keeps_blocks() -> None:
    res = html_to_text("<head><title>T</title><style>p{}</style></head><body><p>a&amp;b</p>"
                       "<div>c</div><script>x()</script><template>t</template></body>")
    assert res.visible == "a&b\nc"
    assert res.hidden == ""


def test_hidden_by_inline_css() -> None:
    res = html_to_text(
        '<p>shown</p><p style="display: none">one</p><p style="visibility:hidden">two</p>'
        '<p style="font-size:0">three</p><p style="font-size:3px">four</p>'
        '<p style="opacity:0">five</p><p hidden>six</p>'
        '<p style="color:#ffffff">seven</p>'
        '<div style="background-color:#000"><span style="color:black">eight</span></div>'
        '<p style="font-size:12px;color:#333">nine</p>')
    assert res.visible.split("\n") == ["shown", "nine"]
    assert res.hidden.split("\n") == ["one", "two", "three", "four", "five", "six", "seven",
                                      "eight"]
    assert "display:none" in res.hidden_reasons


def test_text_too_small_too_faint_or_off_screen_is_not_displayed() -> None:
    # legal.md §4.2: flag font-size <= ~8px and colours near the background
    res = html_to_text(
        '<p style="font-size:8px">a</p><p style="font-size:9px">b</p>'
        '<p style="font-size:0.5em">c</p><p style="font-size:6pt">d</p>'
        '<p style="color:#eeeeee">e</p><p style="color:#f5f5f5">f</p>'
        '<p style="color:#999999">g</p><p style="color:#aaa">h</p>'
        '<div style="background:#222"><p style="color:#333">i</p><p style="color:#ccc">j</p></div>'
        '<p style="position:absolute;left:-9999px">k</p><p style="left:-9999px">l</p>'
        '<p style="text-indent:-10000px">m</p><p style="position:absolute;top:-50px">n</p>'
        '<p><font size="1">o</font></p>')
    assert res.visible.split("\n") == ["b", "g", "h", "j", "l", "n", "o"]
    assert res.hidden.split("\n") == ["a", "c", "d", "e", "f", "i", "k", "m"]
    assert set(res.hidden_reasons) == {
        "font too small to read", "text colour close to background", "off-screen"}


def test_size_and_colour_are_decided_per_element_so_a_child_can_be_read_again() -> None:
    # "font-size:0" on a cell is how responsive templates remove the gaps between
    # inline-block columns; the text inside sets its own size and is read
    res = html_to_text(
        '<table><tr><td style="font-size:0"><div style="display:inline-block">'
        '<span style="font-size:14px">配信停止はこちら</span></div></td></tr></table>'
        '<div style="font-size:20px"><span style="font-size:0.3em">six px</span></div>'
        '<div style="font-size:6px"><p style="font-size:200%">twelve px</p><p>six</p></div>'
        '<div style="background:#ffffff;color:#fefefe"><b style="color:#222">dark</b> faint</div>'
        '<div style="display:none"><span style="font-size:14px;color:#000">gone</span></div>')
    assert res.visible.split("\n") == ["配信停止はこちら", "twelve px", "dark"]
    assert res.hidden.split("\n") == ["six px", "six", "faint", "gone"]


def test_no_contrast_is_judged_over_a_background_image() -> None:
    res = html_to_text(
        '<table><tr><td style="background:url(dark.jpg);color:#ffffff">one</td>'
        '<td style="background:url(white-bg.png) #222222;color:#fff">two</td>'
        '<td background="dark.jpg"><font color="#ffffff">three</font></td>'
        '<td style="background-image:linear-gradient(#000,#333);color:#fff">four</td></tr></table>'
        '<div style="background:#ffffff;color:#fefefe">five</div>')
    assert res.visible.split("\n") == ["one two three four"]
    assert res.hidden == "five"


def test_visibility_thresholds_come_from_the_caller() -> None:
    html = '<p style="font-size:10px;color:#cccccc">small print</p>'
    assert html_to_text(html).visible == "small print"
    strict = Visibility(min_font_px=10.0, min_contrast=1.5)
    assert html_to_text(html, strict).hidden == "small print"
    assert html_to_text(html, Visibility(min_contrast=1.7)).hidden_reasons == (
        "text colour close to background",)
    assert round(contrast((0, 0, 0), (255, 255, 255)), 2) == 21.0
    assert round(contrast((204, 204, 204), (255, 255, 255)), 2) == 1.61


def test_hidden_by_stylesheet_rules() -> None:
    res = html_to_text(
        "<html><head><style>\n"
        "/* one sheet, the rules a template would use */\n"
        ".hide { display: none }\n"
        "#ghost{visibility:hidden} p.tiny{font-size:1px}\n"
        "td.white, .white-text { color: #FFFFFF; }\n"
        "a:hover { color: #fff }\n"  # only while the pointer is on it
        "@media (max-width: 600px) { .desktop { display: none !important } }\n"
        ".shown { display: none } .shown { display: block }\n"  # the later rule wins
        ".inline-wins { display: none }\n"
        ".sheet-wins { display: none !important }\n"
        "</style></head><body>"
        '<p>visible</p><div class="hide">one</div><p id="ghost">two</p>'
        '<p class="tiny">three</p><table><tr><td class="white">four</td></tr></table>'
        '<p class="desktop">desktop</p><p><a href="https://example.jp/">link</a></p>'
        '<p class="shown">shown</p><p class="inline-wins" style="display:block">inline</p>'
        '<p class="sheet-wins" style="display:block">five</p>'
        '<p class="sheet-wins" style="display:block ! Important">also inline</p>'
        '<p class="hide"><a href="https://hidden.example.jp/u">配信停止</a></p>'
        "</body></html>"
    )
    assert res.visible.split("\n") == ["visible", "desktop", "link", "shown", "inline",
                                       "also inline"]
    assert res.hidden.split("\n") == ["one", "two", "three", "four", "five", "配信停止"]
    assert {"display:none", "visibility:hidden", "font too small to read",
            "text colour close to background"} <= set(res.hidden_reasons)
    assert [lk.hidden for lk in res.links] == [False, True]


def test_stylesheet_selectors_with_colons() -> None:
    # A ":" inside an attribute selector or a string is not a pseudo-class, and structural
    # pseudo-classes select what is on screen: both hide. User actions and pseudo-elements
    # describe no text the reader sees on opening: ignored.
    res = html_to_text(
        "<style>\n"
        'a[href^="https:"] { display: none }\n'
        "td:first-child, p:not(.keep) { font-size: 0 }\n"
        "a:hover, p:focus, p.keep:FOCUS-within, p::before, p::first-line { display: none }\n"
        "</style>"
        '<p class="keep"><a href="https://example.jp/u">配信停止</a> <a href="mailto:u@example.jp">'
        "mail</a></p><table><tr><td>first</td><td>second</td></tr></table>"
        "<p>not kept</p>"
    )
    assert res.visible.split("\n") == ["mail", "second"]
    assert res.hidden.replace("\n", "") == "配信停止firstnot kept"
    assert {lk.href: lk.hidden for lk in res.links} == {
        "https://example.jp/u": True, "mailto:u@example.jp": False,
    }


def test_stylesheet_that_does_not_parse_hides_nothing() -> None:
    res = html_to_text("<style>.x { display: none; } } }} .y {{ color: </style>"
                       '<p class="y">a</p><p class="q">b</p><style>[[[ {display:none}</style>')
    assert res.visible == "a\nb"


def test_links_with_positions() -> None:
    res = html_to_text('<p>配信停止は<a href=" https://example.jp/u?x=1 ">こちら</a>から</p>'
                       '<p><a href="mailto:info@example.jp">問い合わせ</a></p>'
                       '<p style="display:none"><a href="https://hidden.example.jp/">h</a></p>')
    first, second, hidden = res.links
    assert first.href == "https://example.jp/u?x=1"
    assert res.visible[first.start:first.end] == "こちら" == first.text
    assert second.href.startswith("mailto:") and not second.hidden
    assert hidden.hidden and hidden.text == "h"


def test_value_split_across_tags_stays_contiguous() -> None:
    res = html_to_text("<p>株式<span>会社</span><b>サンプル</b></p>")
    assert res.visible == "株式会社サンプル"


def test_deep_nesting_does_not_recurse() -> None:
    html = "<div>" * 5000 + "deep" + "</div>" * 5000
    assert "deep" in html_to_text(html).visible


_TOKENS = [*"<>/=\"' abcdiv pspan style:none#fff&;", "<p>", "</p>", "<a href=x>", "</a>",
           "<br>", "配信停止", '<span style="display:none">', "</span>"]


@settings(max_examples=150)
@given(st.lists(st.sampled_from(_TOKENS), max_size=80))
def test_never_raises(tokens: list[str]) -> None:
    res = html_to_text("".join(tokens))
    for link in res.links:
        text = res.hidden if link.hidden else res.visible
        assert 0 <= link.start <= link.end <= len(text)


def test_a_link_that_runs_into_stripped_whitespace_ends_with_the_text() -> None:
    # Found by the fuzzer (tests/fuzz): the end of the text is stripped, and a link whose last
    # characters were spaces kept an end past it.
    for html in ('<div><a href="mailto:info@example.jp">info@example.jp&nbsp; \u3000</div>',
                 '<p><a href="x">配信停止&nbsp;</a>&nbsp;&nbsp;</p>'):
        res = html_to_text(html)
        (link,) = res.links
        assert link.end == len(res.visible)
        assert res.visible[link.start:link.end].strip() == link.text


# Markup the fast path (rendering lexbor's serialisation) must handle exactly like the DOM walk:
# blocks, cells, links (nested, empty, hidden), inline CSS and colours, entities, whitespace,
# dropped elements, comments and <style> in the body.
_MARKUP = ["<p>", "</p>", "<div>", "</div>", "<td>", "</td>", "<tr>", "<table>", "</table>", "<br>",
           "<hr>", "<li>", "<h1>", "</h1>", "<a href=x>", "<a href=' y '>", '<a href="">', "<a>",
           "</a>", "<span>", "</span>", "<b>", "</b>", " ", "  ", "\n", "\t", "x", "配信", "停止",
           "&amp;", "&lt;", "&nbsp;", "\u3000", '<span style="display:none">',
           '<div style="color:#fff">', '<div style="background-color:#000">',
           '<font color="white">', "<p hidden>", '<td bgcolor="#ffffff">',
           '<span style="font-size:0">', '<img src=x style="display:none">', "<img src=y>",
           "<!-- c -->", "<!--", "-->", "<style>p{}</style>", "<title>t</title>", "<meta x=1>",
           "<button>b</button>", "<object>", "</object>", "<template>t</template>", "<body>",
           '<body style="background:#000">', "<th>", "<caption>", "<input>", "&", "'", "="]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(_MARKUP), max_size=60))
def test_fast_path_renders_like_the_dom_walk(tokens: list[str]) -> None:
    html = "".join(tokens)
    tree = LexborHTMLParser(html)
    body = tree.body
    assert body is not None
    assert _render_serialized(body.html or "") is not None  # all of the above is modelled
    assert html_to_text(html) == _walk(body)


def test_fast_path_declines_what_it_does_not_model() -> None:
    for html in ("<pre>a  b</pre>", "<p>x<script>if(a<b)</script>", "<svg><p>s</svg>",
                 "<p>\ufdd0</p>", '<p a"b=1>x</p>', "<xmp><b></xmp>"):
        body = LexborHTMLParser(html).body
        assert body is not None
        assert _render_serialized(body.html or "") is None, html
        assert html_to_text(html) == _walk(body)
