# %% array statistics
import numpy as np
rng = np.random.default_rng(0)
a = rng.normal(10, 2, size=(1000, 3))
print(a.mean(axis=0).round(2), a.std(axis=0).round(2))
assert a.shape == (1000, 3) and abs(a.mean() - 10) < 0.3
# %% linear algebra
A = np.array([[3, 1], [1, 2]], dtype=float)
b = np.array([9, 8], dtype=float)
x = np.linalg.solve(A, b)
w, v = np.linalg.eig(A)
assert np.allclose(A @ x, b)
x, w
# %% dataframe from dict and groupby
import pandas as pd
df = pd.DataFrame({"region": ["N", "S", "N", "E", "S", "E"] * 50,
                   "sales": np.arange(300) * 1.5, "units": np.arange(300) % 7})
summary = df.groupby("region").agg(total=("sales", "sum"), mean_units=("units", "mean")).sort_values("total")
print(summary)
assert list(summary.index) == sorted(summary.index, key=lambda r: summary.loc[r, "total"])
# %% csv round trip in /mnt/data
df.to_csv("/mnt/data/sales.csv", index=False)
back = pd.read_csv("sales.csv")
assert back.shape == df.shape
back.head()
# %% dates and resampling
ts = pd.Series(np.arange(90), index=pd.date_range("2024-01-01", periods=90, freq="D"))
monthly = ts.resample("M").sum()
print(monthly)
assert len(monthly) == 3
# %% pivot table and merge
left = pd.DataFrame({"id": [1, 2, 3], "name": ["a", "b", "c"]})
right = pd.DataFrame({"id": [1, 1, 2, 3], "amount": [5, 6, 7, 8]})
merged = left.merge(right, on="id")
pt = merged.pivot_table(index="name", values="amount", aggfunc="sum")
assert pt.loc["a", "amount"] == 11
pt
# %% rolling windows and describe
s = pd.Series(rng.normal(size=200)).cumsum()
roll = s.rolling(20).mean()
print(s.describe())
assert roll.isna().sum() == 19
# %% excel output via openpyxl engine
with pd.ExcelWriter("/mnt/data/report.xlsx") as writer:
    summary.to_excel(writer, sheet_name="summary")
    df.head(20).to_excel(writer, sheet_name="data", index=False)
assert pd.read_excel("/mnt/data/report.xlsx", sheet_name="data").shape == (20, 3)
# %% numpy_financial loan schedule
import numpy_financial as npf
payment = npf.pmt(0.05 / 12, 360, 300000)
assert round(payment, 2) == -1610.46
npv = npf.npv(0.08, [-1000, 300, 400, 500])
print(round(payment, 2), round(npv, 2))
