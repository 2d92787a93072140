# %% xgboost classifier with early stopping in fit (1.x style)
import numpy as np
import xgboost as xgb
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
X, y = load_breast_cancer(return_X_y=True)
Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0)
clf = xgb.XGBClassifier(n_estimators=200, max_depth=3, learning_rate=0.1, eval_metric="logloss")
clf.fit(Xtr, ytr, eval_set=[(Xte, yte)], early_stopping_rounds=10, verbose=False)
assert (clf.predict(Xte) == yte).mean() > 0.93
clf.best_iteration
# %% xgboost regressor and feature importance plot
import matplotlib.pyplot as plt
from sklearn.datasets import load_diabetes
Xd, yd = load_diabetes(return_X_y=True)
reg = xgb.XGBRegressor(n_estimators=100).fit(Xd, yd)
xgb.plot_importance(reg, max_num_features=5); plt.show()
# %% xgboost DMatrix train API
d = xgb.DMatrix(Xtr, label=ytr)
booster = xgb.train({"objective": "binary:logistic", "max_depth": 3}, d, num_boost_round=50)
assert booster.predict(xgb.DMatrix(Xte)).shape == (len(Xte),)
# %% lightgbm classifier with callbacks
import lightgbm as lgb
model = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.05, verbose=-1)
model.fit(Xtr, ytr, eval_set=[(Xte, yte)], callbacks=[lgb.early_stopping(10, verbose=False)])
assert model.score(Xte, yte) > 0.93
# %% lightgbm dataset API with pandas categoricals
import pandas as pd
df = pd.DataFrame({"a": np.random.default_rng(0).normal(size=500),
                   "c": pd.Categorical(np.random.default_rng(1).choice(list("xyz"), 500))})
target = (df.a > 0).astype(int)
bst = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(df, target), num_boost_round=20)
assert ((bst.predict(df) > 0.5) == target).mean() > 0.9
# %% catboost with categorical features
from catboost import CatBoostClassifier
cb = CatBoostClassifier(iterations=100, depth=4, verbose=0, random_seed=0, train_dir="/tmp/catboost_info")
cb.fit(df, target, cat_features=["c"])
assert (cb.predict(df) == target).mean() > 0.9
# %% shap values for a tree model
import shap
explainer = shap.TreeExplainer(reg)
sv = explainer.shap_values(Xd[:50])
assert sv.shape == (50, Xd.shape[1])
