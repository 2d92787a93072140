# %% t-test
from scipy import stats
import numpy as np
rng = np.random.default_rng(0)
a, b = rng.normal(0, 1, 100), rng.normal(0.5, 1, 100)
t, p = stats.ttest_ind(a, b)
print(f"t={t:.3f} p={p:.4f}")
assert p < 0.05
# %% optimisation
from scipy.optimize import minimize
res = minimize(lambda v: (v[0] - 3) ** 2 + (v[1] + 1) ** 2, x0=[0, 0])
assert np.allclose(res.x, [3, -1], atol=1e-4)
res.x
# %% curve fit
from scipy.optimize import curve_fit
xs = np.linspace(0, 4, 50)
ys = 2.5 * np.exp(-1.3 * xs) + 0.05 * rng.normal(size=50)
popt, _ = curve_fit(lambda x, a, k: a * np.exp(-k * x), xs, ys)
assert abs(popt[0] - 2.5) < 0.2 and abs(popt[1] - 1.3) < 0.2
# %% integration and interpolation
from scipy import integrate, interpolate
val, err = integrate.quad(lambda x: np.exp(-x ** 2), -np.inf, np.inf)
f = interpolate.interp1d([0, 1, 2], [0, 1, 4], kind="quadratic")
assert abs(val - np.sqrt(np.pi)) < 1e-8 and abs(f(1.5) - 2.25) < 1e-9
# %% sparse matrices
from scipy import sparse
m = sparse.random(100, 100, density=0.05, random_state=0, format="csr")
assert (m @ np.ones(100)).shape == (100,)
m.nnz
# %% chi-square contingency
table = np.array([[20, 30], [25, 25]])
chi2, p, dof, _ = stats.chi2_contingency(table)
print(chi2, p, dof)
assert dof == 1
# %% sympy solve and differentiate
import sympy as sp
x, y = sp.symbols("x y")
sol = sp.solve(x ** 2 - 5 * x + 6, x)
d = sp.diff(sp.sin(x) * sp.exp(x), x)
assert sorted(sol) == [2, 3]
sp.simplify(d)
# %% sympy integral and latex
expr = sp.integrate(x * sp.exp(-x), (x, 0, sp.oo))
assert expr == 1
print(sp.latex(sp.Integral(x * sp.exp(-x), (x, 0, sp.oo))))
