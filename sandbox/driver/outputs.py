"""What an execution produced besides its stdout/stderr: MIME bundles from display() and a
trailing expression, matplotlib figures and displayed PNG / JPEG / SVG as PNG images (at most
MAX_IMAGES per execution)."""

import base64
import html.parser
import io
import json
import re
import sys

MAX_IMAGES = 10
# One image larger than this (as PNG) is dropped with a note rather than sent.
MAX_IMAGE_BYTES = 8 * 1024 * 1024


class Images:
    def __init__(self):
        self.start()

    def start(self):
        self.encoded = []
        self.dropped = 0
        self.too_big = 0

    def full(self):
        return len(self.encoded) >= MAX_IMAGES

    def add_png(self, png):
        if self.full():
            self.dropped += 1
        elif len(png) > MAX_IMAGE_BYTES:
            self.too_big += 1
        else:
            self.encoded.append(base64.b64encode(png).decode("ascii"))

    def notes(self):
        note = ""
        if self.dropped:
            note += (f"\n[{self.dropped} more image(s) not shown: "
                     f"the limit is {MAX_IMAGES} images per execution]\n")
        if self.too_big:
            note += (f"\n[{self.too_big} image(s) not shown: larger than "
                     f"{MAX_IMAGE_BYTES // (1024 * 1024)} MiB as PNG]\n")
        return note


class Figures:
    """matplotlib figures as PNG: on plt.show() / fig.show(), display(fig), a trailing `fig`,
    and those left open at the end. Each is closed once rendered, so none is returned twice.
    Nothing is done before a cell (or the prewarm) imports pyplot: `attach` is called then."""

    def __init__(self, images):
        self.plt = None
        self.images = images

    def attach(self, pyplot):
        import matplotlib.figure

        def show(*_args, **_kwargs):
            for num in pyplot.get_fignums():
                self.capture(pyplot.figure(num))

        def figure_show(fig, *_args, **_kwargs):
            self.capture(fig)

        pyplot.show = show
        matplotlib.figure.Figure.show = figure_show
        self.plt = pyplot

    def png(self, fig):
        """The figure as PNG bytes (None when empty), closing it: the display formatter."""
        try:
            if len(fig.get_children()) <= 1:  # the background patch alone is an empty figure
                return None
            buf = io.BytesIO()
            fig.savefig(buf, format="png", bbox_inches="tight")
            return buf.getvalue()
        finally:
            if self.plt is not None:  # a Figure made without pyplot is not in its registry
                self.plt.close(fig)

    def capture(self, fig):
        if self.images.full():
            self.images.dropped += 1
            if self.plt is not None:
                self.plt.close(fig)
            return
        png = self.png(fig)
        if png is not None:
            self.images.add_png(png)

    def finish(self):
        """Capture figures still open."""
        if self.plt is None:
            return
        for num in self.plt.get_fignums():
            try:
                self.capture(self.plt.figure(num))
            except Exception as exc:
                self.plt.close(num)
                sys.stderr.write(f"[could not render figure {num}: {exc!r}]\n")


# ---------------------------------------------------------------------------------------------
# MIME bundles: what display() and a trailing expression produce

# The text/plain IPython gives objects that only have rich forms (HTML(), Markdown(), JSON()).
BARE_REPR = re.compile(r"<[\w.]+ object(?: at 0x[0-9a-fA-F]+)?>")


class HtmlText(html.parser.HTMLParser):
    """Visible text of an HTML fragment, one line per block element or table row."""

    BLOCKS = {"br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "pre"}

    def __init__(self):
        super().__init__()
        self.parts = []
        self.hidden = 0

    def handle_starttag(self, tag, _attrs):
        if tag in ("script", "style"):
            self.hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append("\t")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.hidden = max(0, self.hidden - 1)

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)

    @classmethod
    def convert(cls, markup):
        parser = cls()
        parser.feed(markup)
        parser.close()
        lines = (line.strip() for line in "".join(parser.parts).splitlines())
        return "\n".join(line for line in lines if line)


def as_bytes(value):
    """Image data from a bundle: raw bytes, or base64 text (IPython.display.Image gives that)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return base64.b64decode(value)


def to_png(mime, value):
    data = value.encode("utf-8") if mime == "image/svg+xml" and isinstance(value, str) else value
    if mime == "image/png":
        return as_bytes(data)
    if mime == "image/jpeg":
        from PIL import Image
        out = io.BytesIO()
        Image.open(io.BytesIO(as_bytes(data))).save(out, format="PNG")
        return out.getvalue()
    import cairosvg
    return cairosvg.svg2png(bytestring=data)


def bundle_text(bundle):
    """The text a log shows for a bundle: text/plain, unless that is only a bare object repr
    and a textual form exists (Markdown, LaTeX, JSON, HTML reduced to its text)."""
    text = bundle.get("text/plain")
    if isinstance(text, str) and not BARE_REPR.fullmatch(text.strip()):
        return text
    if isinstance(bundle.get("text/markdown"), str):
        return bundle["text/markdown"]
    if isinstance(bundle.get("text/latex"), str):
        return bundle["text/latex"]
    if "application/json" in bundle:
        return json.dumps(bundle["application/json"], indent=2, ensure_ascii=False, default=str)
    if isinstance(bundle.get("text/html"), str):
        return HtmlText.convert(bundle["text/html"])
    return text


class Outputs:
    """What one execution produced besides its stdout/stderr files."""

    IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")

    def __init__(self, capture):
        self.capture = capture
        self.images = Images()
        self.start()

    def start(self):
        self.images.start()
        self.result = None
        self.error = None
        self.sink = None  # for a streamed execution: called with (bundle, is_main_result)

    def _image(self, bundle):
        """Take the bundle's image, if it has one; True when it did."""
        for mime in self.IMAGE_TYPES:
            if mime in bundle and bundle[mime]:
                if self.images.full():
                    self.images.dropped += 1
                    return True
                try:
                    self.images.add_png(to_png(mime, bundle[mime]))
                    return True
                except Exception as exc:  # noqa: BLE001 - a broken image is reported, not fatal
                    sys.stderr.write(f"[could not convert {mime} output to PNG: {exc!r}]\n")
        return False

    def display(self, bundle):
        """display(): an image, or its text in stdout, in order with what was printed."""
        if self.sink is not None:
            self.sink(bundle, False)
            return
        if self._image(bundle):
            return
        text = bundle_text(bundle)
        if text is not None:
            self.capture.write_stdout(text if text.endswith("\n") else text + "\n")

    def trailing(self, bundle):
        """The value of a trailing expression: an image, or the `result` text."""
        if self.sink is not None:
            self.sink(bundle, True)
            return
        if not self._image(bundle):
            self.result = bundle_text(bundle)

    def failed(self, ename, evalue, traceback_text):
        self.error = {"ename": ename, "evalue": evalue, "traceback": traceback_text}
