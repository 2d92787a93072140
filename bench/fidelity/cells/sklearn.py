# %% random forest classifier on iris
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, classification_report
X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=42)
clf = RandomForestClassifier(n_estimators=100, random_state=42).fit(X_train, y_train)
pred = clf.predict(X_test)
print(classification_report(y_test, pred))
assert accuracy_score(y_test, pred) > 0.9
# %% linear regression with metrics
import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error, r2_score
rng = np.random.default_rng(0)
Xr = rng.normal(size=(200, 3))
yr = Xr @ [1.5, -2.0, 0.5] + 0.1 * rng.normal(size=200)
lr = LinearRegression().fit(Xr, yr)
assert r2_score(yr, lr.predict(Xr)) > 0.99
lr.coef_
# %% pipeline with scaler and one-hot encoder (old spelling)
import pandas as pd
from sklearn.pipeline import Pipeline
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import StandardScaler, OneHotEncoder
from sklearn.linear_model import LogisticRegression
df = pd.DataFrame({"age": rng.integers(18, 80, 300), "city": rng.choice(["a", "b", "c"], 300),
                   "income": rng.normal(50, 10, 300)})
target = (df.income + (df.city == "a") * 5 > 52).astype(int)
pre = ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                         ("cat", OneHotEncoder(sparse=False, handle_unknown="ignore"), ["city"])])
model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=1000))]).fit(df, target)
assert model.score(df, target) > 0.8
# %% one-hot encoder (new spelling)
enc = OneHotEncoder(sparse_output=False).fit(df[["city"]])
assert enc.transform(df[["city"]]).shape == (300, 3)
enc.get_feature_names_out()
# %% k-means clustering
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
Xb, _ = make_blobs(n_samples=300, centers=4, random_state=0)
km = KMeans(n_clusters=4, n_init=10, random_state=0).fit(Xb)
assert len(set(km.labels_)) == 4
km.inertia_
# %% PCA
from sklearn.decomposition import PCA
pca = PCA(n_components=2).fit(X)
print(pca.explained_variance_ratio_)
assert pca.explained_variance_ratio_.sum() > 0.95
# %% grid search with cross validation
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC
gs = GridSearchCV(SVC(), {"C": [0.1, 1, 10], "kernel": ["linear", "rbf"]}, cv=5).fit(X, y)
print(gs.best_params_, round(gs.best_score_, 3))
assert gs.best_score_ > 0.95
# %% confusion matrix plot
import matplotlib.pyplot as plt
from sklearn.metrics import ConfusionMatrixDisplay
ConfusionMatrixDisplay.from_predictions(y_test, pred)
plt.show()
# %% text classification with tf-idf
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.naive_bayes import MultinomialNB
texts = ["good movie", "great film", "bad movie", "awful film", "great acting", "bad plot"] * 10
labels = [1, 1, 0, 0, 1, 0] * 10
vec = TfidfVectorizer()
nb = MultinomialNB().fit(vec.fit_transform(texts), labels)
assert list(nb.predict(vec.transform(["great movie", "awful plot"]))) == [1, 0]
# %% gradient boosting and feature importance
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.datasets import load_diabetes
Xd, yd = load_diabetes(return_X_y=True, as_frame=True)
gbr = GradientBoostingRegressor(random_state=0).fit(Xd, yd)
imp = pd.Series(gbr.feature_importances_, index=Xd.columns).sort_values(ascending=False)
print(imp.head())
assert imp.index[0] in ("bmi", "s5")
# %% imbalanced-learn SMOTE
from imblearn.over_sampling import SMOTE
from sklearn.datasets import make_classification
Xi, yi = make_classification(n_samples=500, weights=[0.9, 0.1], random_state=0)
Xs, ys = SMOTE(random_state=0).fit_resample(Xi, yi)
assert (ys == 0).sum() == (ys == 1).sum()
# %% joblib model persistence
import joblib
joblib.dump(clf, "/mnt/data/model.joblib")
assert (joblib.load("/mnt/data/model.joblib").predict(X_test) == pred).all()
