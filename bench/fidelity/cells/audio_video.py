# %% soundfile write and read a sine wave
import numpy as np
import soundfile as sf
sr = 22050
t = np.arange(sr) / sr
tone = 0.3 * np.sin(2 * np.pi * 440 * t)
sf.write("/mnt/data/tone.wav", tone, sr)
data, rate = sf.read("/mnt/data/tone.wav")
assert rate == sr and len(data) == sr
# %% librosa pitch and features
import librosa
y, sr2 = librosa.load("/mnt/data/tone.wav", sr=None)
mfcc = librosa.feature.mfcc(y=y, sr=sr2, n_mfcc=13)
f0 = librosa.yin(y, fmin=100, fmax=1000, sr=sr2)
assert mfcc.shape[0] == 13 and abs(np.median(f0) - 440) < 5
# %% pydub with ffmpeg
from pydub import AudioSegment
seg = AudioSegment.from_wav("/mnt/data/tone.wav")
(seg + seg).fade_out(200).export("/mnt/data/tone.mp3", format="mp3")
assert abs(len(AudioSegment.from_mp3("/mnt/data/tone.mp3")) - 2000) < 100
# %% mutagen reads tags
from mutagen.mp3 import MP3
assert MP3("/mnt/data/tone.mp3").info.length > 1.5
# %% moviepy makes a video
from moviepy.editor import ColorClip, concatenate_videoclips
clip = concatenate_videoclips([ColorClip((64, 48), color=c, duration=0.5) for c in [(255, 0, 0), (0, 0, 255)]])
clip.write_videofile("/mnt/data/clip.mp4", fps=10, logger=None)
import os; assert os.path.getsize("/mnt/data/clip.mp4") > 1000
# %% ffmpeg-python probe and convert
import ffmpeg
info = ffmpeg.probe("/mnt/data/clip.mp4") if __import__("shutil").which("ffprobe") else None
ffmpeg.input("/mnt/data/clip.mp4").output("/mnt/data/clip.gif").overwrite_output().run(quiet=True)
assert os.path.getsize("/mnt/data/clip.gif") > 100
# %% ffmpeg on the command line
!ffmpeg -hide_banner -loglevel error -y -i /mnt/data/tone.wav -ar 8000 /mnt/data/tone8k.wav
assert sf.info("/mnt/data/tone8k.wav").samplerate == 8000
