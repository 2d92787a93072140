# %% jax grad and jit
import jax
import jax.numpy as jnp
f = jax.jit(lambda x: jnp.sum(x ** 3))
g = jax.grad(lambda x: jnp.sum(x ** 3))
x = jnp.array([1.0, 2.0])
assert float(f(x)) == 9.0 and jnp.allclose(g(x), jnp.array([3.0, 12.0]))
# %% jax vmap and random
key = jax.random.PRNGKey(0)
m = jax.random.normal(key, (5, 3))
norms = jax.vmap(jnp.linalg.norm)(m)
assert norms.shape == (5,)
# %% keras sequential model trains
import numpy as np
import keras
from keras import layers
X = np.random.default_rng(0).normal(size=(512, 4)).astype("float32")
y = (X[:, 0] + X[:, 1] > 0).astype("float32")
model = keras.Sequential([keras.Input((4,)), layers.Dense(16, activation="relu"), layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
hist = model.fit(X, y, epochs=15, batch_size=32, verbose=0)
print(keras.backend.backend(), hist.history["accuracy"][-1])
assert hist.history["accuracy"][-1] > 0.9
# %% keras save and load
model.save("/mnt/data/model.keras")
loaded = keras.models.load_model("/mnt/data/model.keras")
assert np.allclose(loaded.predict(X[:5], verbose=0), model.predict(X[:5], verbose=0))
# %% pymc model MAP estimate
import pymc as pm
data = np.random.default_rng(1).normal(3.0, 1.0, 100)
with pm.Model():
    mu = pm.Normal("mu", 0, 10)
    sigma = pm.HalfNormal("sigma", 5)
    pm.Normal("obs", mu, sigma, observed=data)
    est = pm.find_MAP(progressbar=False)
assert abs(est["mu"] - 3.0) < 0.3
