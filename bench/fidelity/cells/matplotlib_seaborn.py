# %% line plot with labels
import matplotlib.pyplot as plt
import numpy as np
x = np.linspace(0, 10, 200)
fig, ax = plt.subplots(figsize=(8, 4))
ax.plot(x, np.sin(x), label="sin")
ax.plot(x, np.cos(x), label="cos")
ax.set_title("Waves"); ax.legend(); ax.grid(True)
plt.show()
# %% saved figure with subplots
fig, axes = plt.subplots(2, 2, figsize=(8, 6))
for i, ax in enumerate(axes.flat):
    ax.hist(np.random.default_rng(i).normal(size=500), bins=30)
plt.tight_layout()
plt.savefig("/mnt/data/hists.png", dpi=100)
import os; assert os.path.getsize("/mnt/data/hists.png") > 10000
# %% seaborn heatmap of correlations
import seaborn as sns
import pandas as pd
df = pd.DataFrame(np.random.default_rng(1).normal(size=(100, 4)), columns=list("abcd"))
sns.heatmap(df.corr(), annot=True, cmap="coolwarm")
plt.title("Correlation")
plt.show()
# %% seaborn categorical plot
tips = pd.DataFrame({"day": ["Thu", "Fri", "Sat", "Sun"] * 25,
                     "total_bill": np.random.default_rng(2).uniform(5, 50, 100),
                     "smoker": ["yes", "no"] * 50})
sns.boxplot(data=tips, x="day", y="total_bill", hue="smoker")
plt.show()
# %% CJK labels render
fig, ax = plt.subplots()
ax.bar(["北京", "上海", "東京"], [3, 5, 2])
ax.set_title("销售额")
fig.savefig("/mnt/data/cjk.png")
plt.close(fig)
# %% pie chart with percentages
fig, ax = plt.subplots()
ax.pie([30, 45, 25], labels=["A", "B", "C"], autopct="%1.1f%%")
ax.axis("equal")
plt.show()
