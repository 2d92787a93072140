# %% OLS summary with formula
import numpy as np, pandas as pd
import statsmodels.formula.api as smf
rng = np.random.default_rng(0)
df = pd.DataFrame({"x1": rng.normal(size=200), "x2": rng.normal(size=200), "g": rng.choice(["a", "b"], 200)})
df["y"] = 1 + 2 * df.x1 - 0.5 * df.x2 + (df.g == "b") * 0.7 + rng.normal(scale=0.5, size=200)
model = smf.ols("y ~ x1 + x2 + C(g)", data=df).fit()
print(model.summary())
assert abs(model.params["x1"] - 2) < 0.2
# %% OLS with statsmodels.api and add_constant
import statsmodels.api as sm
X = sm.add_constant(df[["x1", "x2"]])
res = sm.OLS(df["y"], X).fit()
assert res.rsquared > 0.8
res.pvalues
# %% logistic regression
df["yb"] = (df.y > df.y.median()).astype(int)
logit = smf.logit("yb ~ x1 + x2", data=df).fit(disp=0)
print(logit.summary2())
assert logit.params["x1"] > 0
# %% ARIMA forecast
from statsmodels.tsa.arima.model import ARIMA
series = pd.Series(np.cumsum(rng.normal(size=120)), index=pd.date_range("2015-01", periods=120, freq="MS"))
fit = ARIMA(series, order=(1, 1, 1)).fit()
fc = fit.forecast(12)
assert len(fc) == 12
fc.head()
# %% seasonal decomposition
from statsmodels.tsa.seasonal import seasonal_decompose
seasonal = pd.Series(10 + np.sin(np.arange(96) * 2 * np.pi / 12) + 0.1 * np.arange(96),
                     index=pd.date_range("2016-01", periods=96, freq="MS"))
dec = seasonal_decompose(seasonal, model="additive", period=12)
dec.plot()
assert dec.seasonal.abs().max() > 0.5
# %% ANOVA and Tukey
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.multicomp import pairwise_tukeyhsd
print(anova_lm(smf.ols("y ~ C(g)", data=df).fit()))
print(pairwise_tukeyhsd(df.y, df.g))
# %% ADF test
from statsmodels.tsa.stattools import adfuller
stat, p, *_ = adfuller(rng.normal(size=300))
assert p < 0.05
