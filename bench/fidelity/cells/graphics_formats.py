# %% graphviz python package renders
import graphviz
dot = graphviz.Digraph(comment="Flow")
dot.edge("Start", "Process"); dot.edge("Process", "End")
dot.render("/mnt/data/flow", format="png", cleanup=True)
import os; assert os.path.getsize("/mnt/data/flow.png") > 500
# %% pydot graph
import pydot
g = pydot.Dot(graph_type="graph"); g.add_edge(pydot.Edge("a", "b"))
g.write_png("/mnt/data/pydot.png")
assert os.path.exists("/mnt/data/pydot.png")
# %% pygraphviz layout
import pygraphviz as pgv
A = pgv.AGraph(directed=True); A.add_edge(1, 2); A.add_edge(2, 3)
A.layout(prog="dot"); A.draw("/mnt/data/pgv.svg")
assert "<svg" in open("/mnt/data/pgv.svg").read()
# %% svgwrite, cairosvg and svglib
import svgwrite, cairosvg
d = svgwrite.Drawing("/mnt/data/shape.svg", size=(100, 100))
d.add(d.circle((50, 50), 40, fill="green")); d.save()
cairosvg.svg2png(url="/mnt/data/shape.svg", write_to="/mnt/data/shape.png")
from svglib.svglib import svg2rlg
from reportlab.graphics import renderPDF
renderPDF.drawToFile(svg2rlg("/mnt/data/shape.svg"), "/mnt/data/shape.pdf")
assert os.path.getsize("/mnt/data/shape.png") > 100
# %% h5py datasets
import h5py, numpy as np
with h5py.File("/mnt/data/d.h5", "w") as f:
    f.create_dataset("x", data=np.arange(10)); f["x"].attrs["unit"] = "m"
with h5py.File("/mnt/data/d.h5") as f:
    assert f["x"][:].sum() == 45 and f["x"].attrs["unit"] == "m"
# %% pandas HDF5 via PyTables
import pandas as pd
pd.DataFrame({"a": range(5)}).to_hdf("/mnt/data/t.h5", key="df", mode="w")
assert pd.read_hdf("/mnt/data/t.h5", "df").a.sum() == 10
# %% xarray dataset
import xarray as xr
ds = xr.Dataset({"temp": (("time", "x"), np.random.default_rng(0).normal(size=(4, 3)))},
                coords={"time": pd.date_range("2024-01-01", periods=4), "x": [1, 2, 3]})
assert ds.temp.mean("time").shape == (3,)
# %% yaml and json round trip
import yaml, json
cfg = {"name": "run", "params": {"lr": 0.01, "layers": [16, 8]}}
assert yaml.safe_load(yaml.safe_dump(cfg)) == cfg == json.loads(json.dumps(cfg))
# %% chardet encoding detection
import chardet
raw = "Ceci est un texte en français, avec des accents é è à.".encode("latin-1")
assert chardet.detect(raw)["encoding"].lower() in ("iso-8859-1", "windows-1252")
# %% anytree hierarchy
from anytree import Node, RenderTree
root = Node("CEO"); cto = Node("CTO", parent=root); Node("Dev", parent=cto)
print(RenderTree(root).by_attr())
assert len(root.descendants) == 2
# %% zip and tar archives
import zipfile, tarfile
with zipfile.ZipFile("/mnt/data/a.zip", "w") as z:
    z.writestr("readme.txt", "hi")
with tarfile.open("/mnt/data/a.tar.gz", "w:gz") as t:
    t.add("/mnt/data/a.zip", arcname="a.zip")
assert zipfile.ZipFile("/mnt/data/a.zip").read("readme.txt") == b"hi"
# %% lxml xpath
from lxml import etree
tree = etree.fromstring("<root><item id='1'>a</item><item id='2'>b</item></root>")
assert tree.xpath("//item[@id='2']/text()") == ["b"]
