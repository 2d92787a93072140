# %% shapely geometry operations
from shapely.geometry import Point, Polygon
from shapely.ops import unary_union
poly = Polygon([(0, 0), (4, 0), (4, 3), (0, 3)])
circle = Point(4, 3).buffer(1)
assert poly.area == 12 and poly.intersects(circle)
unary_union([poly, circle]).area
# %% geopandas with the bundled world map
import geopandas as gpd
import matplotlib.pyplot as plt
world = gpd.read_file(gpd.datasets.get_path("naturalearth_lowres"))
africa = world[world.continent == "Africa"]
ax = africa.plot(column="pop_est", legend=True, figsize=(6, 6)); plt.show()
assert len(africa) > 40
# %% geopandas points, CRS and spatial join
pts = gpd.GeoDataFrame({"name": ["Paris", "Nairobi"]}, geometry=gpd.points_from_xy([2.35, 36.82], [48.86, -1.29]), crs="EPSG:4326")
joined = gpd.sjoin(pts, world[["name", "geometry"]].rename(columns={"name": "country"}), predicate="within")
assert set(joined.country) == {"France", "Kenya"}
pts.to_crs(3857).geometry.x.round(0).tolist()
# %% geopandas write and read GeoJSON (fiona)
africa.to_file("/mnt/data/africa.geojson", driver="GeoJSON")
assert len(gpd.read_file("/mnt/data/africa.geojson")) == len(africa)
# %% pyproj transform
from pyproj import Transformer
x, y = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(2.35, 48.86)
assert 261000 < x < 262000
# %% folium map saved as HTML
import folium
m = folium.Map(location=[48.86, 2.35], zoom_start=5)
folium.Marker([48.86, 2.35], popup="Paris").add_to(m)
m.save("/mnt/data/map.html")
assert "Paris" in open("/mnt/data/map.html").read()
# %% basemap coastlines
from mpl_toolkits.basemap import Basemap
fig = plt.figure(figsize=(6, 4))
bm = Basemap(projection="merc", llcrnrlat=-60, urcrnrlat=75, llcrnrlon=-180, urcrnrlon=180, resolution="c")
bm.drawcoastlines(); bm.drawcountries()
plt.show()
# %% rasterio write and read a GeoTIFF
import numpy as np
import rasterio
from rasterio.transform import from_origin
arr = np.arange(100, dtype="float32").reshape(10, 10)
with rasterio.open("/mnt/data/r.tif", "w", driver="GTiff", height=10, width=10, count=1, dtype="float32",
                   crs="EPSG:4326", transform=from_origin(0, 10, 1, 1)) as dst:
    dst.write(arr, 1)
with rasterio.open("/mnt/data/r.tif") as src:
    assert src.read(1).sum() == arr.sum() and src.crs.to_epsg() == 4326
# %% plotly figure to HTML
import plotly.express as px
import pandas as pd
df = pd.DataFrame({"x": range(10), "y": [v * v for v in range(10)], "g": ["a", "b"] * 5})
fig = px.line(df, x="x", y="y", color="g", title="Squares")
fig.write_html("/mnt/data/plot.html")
assert len(fig.data) == 2
# %% plotly graph objects
import plotly.graph_objects as go
fig = go.Figure(go.Bar(x=["a", "b"], y=[3, 5])); fig.update_layout(title="Bars")
assert fig.to_dict()["data"][0]["type"] == "bar"
# %% bokeh figure saved
from bokeh.plotting import figure, output_file, save
output_file("/mnt/data/bokeh.html")
p = figure(title="line"); p.line([1, 2, 3], [4, 6, 5])
save(p)
import os; assert os.path.getsize("/mnt/data/bokeh.html") > 1000
# %% plotnine grammar of graphics
from plotnine import ggplot, aes, geom_point, geom_smooth, labs
plot = ggplot(df, aes("x", "y", color="g")) + geom_point() + labs(title="plotnine")
plot.save("/mnt/data/plotnine.png", dpi=72, verbose=False)
assert os.path.exists("/mnt/data/plotnine.png")
# %% matplotlib-venn
from matplotlib_venn import venn2, venn3
venn3([{1, 2, 3}, {2, 3, 4}, {3, 4, 5}], set_labels=("A", "B", "C")); plt.show()
