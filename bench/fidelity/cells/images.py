# %% opencv blur, edges and contours
import cv2
import numpy as np
img = np.zeros((200, 300, 3), np.uint8)
cv2.rectangle(img, (50, 50), (150, 150), (255, 255, 255), -1)
cv2.circle(img, (230, 100), 40, (0, 0, 255), -1)
gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
edges = cv2.Canny(cv2.GaussianBlur(gray, (5, 5), 0), 50, 150)
contours, _ = cv2.findContours((gray > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
assert len(contours) == 2 and edges.any()
cv2.imwrite("/mnt/data/shapes.png", img)
# %% opencv resize, rotate and threshold
rot = cv2.warpAffine(img, cv2.getRotationMatrix2D((150, 100), 45, 1.0), (300, 200))
small = cv2.resize(img, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
_, th = cv2.threshold(gray, 127, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
assert small.shape == (100, 150, 3) and th.max() == 255
# %% opencv read back and show with matplotlib
import matplotlib.pyplot as plt
back = cv2.imread("/mnt/data/shapes.png")
plt.imshow(cv2.cvtColor(back, cv2.COLOR_BGR2RGB)); plt.axis("off"); plt.show()
# %% opencv ORB features and template match
orb = cv2.ORB_create()
kp, des = orb.detectAndCompute(gray, None)
res = cv2.matchTemplate(gray, gray[40:160, 40:160], cv2.TM_CCOEFF_NORMED)
assert res.max() > 0.99
# %% scikit-image filters and segmentation
from skimage import data, filters, measure, morphology, color, transform
coins = data.coins()
th = filters.threshold_otsu(coins)
mask = morphology.remove_small_objects(coins > th, 50)
labels = measure.label(mask)
print(labels.max(), "regions")
assert labels.max() > 10
# %% scikit-image transforms and metrics
from skimage.metrics import structural_similarity
cam = data.camera()
resized = transform.resize(cam, (256, 256), anti_aliasing=True)
rotated = transform.rotate(cam, 30)
assert resized.shape == (256, 256)
structural_similarity(cam, cam)
# %% scikit-image region properties table
import pandas as pd
props = pd.DataFrame(measure.regionprops_table(labels, properties=("label", "area", "centroid")))
assert (props.area > 0).all()
props.head()
# %% PIL editing
from PIL import Image, ImageFilter, ImageEnhance, ImageOps
im = Image.open("/mnt/data/shapes.png").convert("RGB")
im2 = ImageEnhance.Contrast(im.filter(ImageFilter.GaussianBlur(2))).enhance(1.5)
ImageOps.grayscale(im2).resize((150, 100)).save("/mnt/data/thumb.jpg", quality=85)
assert Image.open("/mnt/data/thumb.jpg").size == (150, 100)
# %% wordcloud
from wordcloud import WordCloud, STOPWORDS
text = "data science python pandas numpy plot chart model data data python learning " * 20
wc = WordCloud(width=400, height=200, background_color="white", stopwords=STOPWORDS).generate(text)
plt.imshow(wc, interpolation="bilinear"); plt.axis("off"); plt.show()
wc.to_file("/mnt/data/cloud.png")
assert "data" in wc.words_
# %% qrcode made and read back with pyzbar
import qrcode
from pyzbar.pyzbar import decode
qrcode.make("https://example.com/invoice/42").save("/mnt/data/qr.png")
decoded = decode(Image.open("/mnt/data/qr.png"))
assert decoded[0].data.decode() == "https://example.com/invoice/42"
# %% imageio gif
import imageio
frames = [np.full((50, 50, 3), i * 25, np.uint8) for i in range(10)]
imageio.mimsave("/mnt/data/anim.gif", frames, duration=0.1)
assert len(imageio.mimread("/mnt/data/anim.gif")) == 10
# %% dlib face detector on an empty image
import dlib
detector = dlib.get_frontal_face_detector()
assert len(detector(np.zeros((100, 100), np.uint8))) == 0
