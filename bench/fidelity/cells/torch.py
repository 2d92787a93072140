# %% tensor operations
import torch
a = torch.arange(12, dtype=torch.float32).reshape(3, 4)
b = torch.ones(4, 2)
assert (a @ b).shape == (3, 2) and a.sum().item() == 66
torch.__version__
# %% autograd
x = torch.tensor([2.0, 3.0], requires_grad=True)
y = (x ** 2).sum()
y.backward()
assert torch.allclose(x.grad, torch.tensor([4.0, 6.0]))
# %% a small network learns XOR-like data
import torch.nn as nn
torch.manual_seed(0)
X = torch.rand(256, 2)
Y = ((X[:, 0] > 0.5) ^ (X[:, 1] > 0.5)).float().unsqueeze(1)
net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
opt = torch.optim.Adam(net.parameters(), lr=0.05)
loss_fn = nn.BCEWithLogitsLoss()
for _ in range(300):
    opt.zero_grad(); loss = loss_fn(net(X), Y); loss.backward(); opt.step()
acc = ((net(X) > 0).float() == Y).float().mean().item()
print(loss.item(), acc)
assert acc > 0.85
# %% DataLoader and TensorDataset
from torch.utils.data import DataLoader, TensorDataset
dl = DataLoader(TensorDataset(X, Y), batch_size=32, shuffle=True)
assert sum(len(xb) for xb, _ in dl) == 256
# %% save and load a state dict
torch.save(net.state_dict(), "/mnt/data/net.pt")
net2 = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
net2.load_state_dict(torch.load("/mnt/data/net.pt"))
assert torch.allclose(net(X), net2(X))
# %% torchvision transforms
import torchvision.transforms as T
from PIL import Image
img = Image.new("RGB", (64, 48), "red")
t = T.Compose([T.Resize((32, 32)), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])(img)
assert t.shape == (3, 32, 32)
# %% torchvision model architecture (no weights)
import torchvision
m = torchvision.models.resnet18(num_classes=10)
with torch.no_grad():
    out = m(torch.rand(1, 3, 64, 64))
assert out.shape == (1, 10)
# %% torchaudio transforms
import torchaudio
wave = torch.sin(2 * torch.pi * 440 * torch.arange(16000) / 16000).unsqueeze(0)
spec = torchaudio.transforms.MelSpectrogram(sample_rate=16000)(wave)
assert spec.shape[1] == 128
# %% einops rearrange
from einops import rearrange, reduce
imgs = torch.rand(8, 3, 32, 32)
assert rearrange(imgs, "b c h w -> b (h w) c").shape == (8, 1024, 3)
assert reduce(imgs, "b c h w -> b c", "mean").shape == (8, 3)
