# %% faker fake records
from faker import Faker
fake = Faker(); Faker.seed(0)
rows = [{"name": fake.name(), "email": fake.email(), "city": fake.city()} for _ in range(5)]
assert all("@" in r["email"] for r in rows)
rows[0]
# %% pycountry and countryinfo
import pycountry
from countryinfo import CountryInfo
assert pycountry.countries.get(alpha_2="DE").name == "Germany"
assert CountryInfo("France").capital() == "Paris"
# %% rdkit molecule properties
from rdkit import Chem
from rdkit.Chem import Descriptors
mol = Chem.MolFromSmiles("CC(=O)Oc1ccccc1C(=O)O")
assert round(Descriptors.MolWt(mol), 1) == 180.2
# %% biopython sequences
from Bio.Seq import Seq
s = Seq("ATGGCCATTGTAATGGGCCGCTGA")
assert str(s.translate(to_stop=True)) == "MAIVMGR" and str(s.reverse_complement())[:3] == "TCA"
# %% trimesh primitives
import trimesh
box = trimesh.creation.box(extents=(1, 2, 3))
assert abs(box.volume - 6) < 1e-9 and box.is_watertight
# %% exchange_calendars sessions
import exchange_calendars as xcals
nyse = xcals.get_calendar("XNYS")
sessions = nyse.sessions_in_range("2024-12-23", "2024-12-27")
assert len(sessions) == 4
# %% cryptography Fernet and hashing
from cryptography.fernet import Fernet
import hashlib
k = Fernet(Fernet.generate_key())
assert k.decrypt(k.encrypt(b"secret")) == b"secret"
hashlib.sha256(b"x").hexdigest()[:16]
# %% loguru logging
from loguru import logger
import sys
logger.remove(); logger.add(sys.stdout, format="{level} {message}")
logger.info("processing done")
# %% nashpy equilibria
import nashpy as nash
import numpy as np
game = nash.Game(np.array([[3, 0], [5, 1]]), np.array([[3, 5], [0, 1]]))
eq = list(game.support_enumeration())
assert len(eq) == 1
# %% kerykeion chart offline (2.x API)
from kerykeion import KrInstance
subject = KrInstance("Ada", 1990, 6, 15, 12, 0, city="London", nat="GB", lon=-0.13, lat=51.5, tz_str="Europe/London")
subject.get_all()
assert subject.sun["sign"] == "Gem"
# %% pytest runs a test file
open("/mnt/data/test_math.py", "w").write("def test_add():\n    assert 1 + 1 == 2\n")
import subprocess, sys
r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "/mnt/data/test_math.py"], capture_output=True, text=True)
print(r.stdout[-200:])
assert r.returncode == 0
# %% fastapi app with TestClient
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
app = FastAPI()
class Item(BaseModel):
    name: str
    price: float
@app.post("/items")
def create(item: Item):
    return {"name": item.name, "total": item.price * 2}
assert TestClient(app).post("/items", json={"name": "a", "price": 2.5}).json() == {"name": "a", "total": 5.0}
# %% qr code with a datetime stamp and regex
import re, datetime
stamp = datetime.datetime(2024, 5, 1, 12, 30).isoformat()
assert re.match(r"\d{4}-\d{2}-\d{2}T", stamp)
# %% sqlite in memory
import sqlite3
con = sqlite3.connect(":memory:")
con.execute("create table t(a int)"); con.executemany("insert into t values (?)", [(1,), (2,)])
assert con.execute("select sum(a) from t").fetchone()[0] == 3
# %% gtts builds a request without sending it
from gtts import gTTS
tts = gTTS("hello", lang="en")
assert tts.lang == "en"
