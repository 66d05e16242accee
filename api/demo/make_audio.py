#!/usr/bin/env python3
"""Regenerate the demo talk audio, sentence timestamps and Korean SRT files.

Single source of truth: ``talks.json`` next to this file.

* ``media == "audio"`` talks: every sentence is synthesised on its own
  (espeak-ng for English, festival + festvox-ru for Russian), resampled to
  16 kHz mono with sox, and the pieces are joined with ``PAUSE_S`` of silence
  (``LEAD_S`` before the first sentence, ``TAIL_S`` after the last).  Nothing
  is trimmed, so ``sentence_times[i] = [start, end]`` is exactly where the
  i-th per-sentence file sits in the joined talk.  The result is encoded as
  Ogg Opus (16 kHz mono, ``BITRATE`` bit/s) with PyAV, then decoded again to
  check it and measure ``duration_s``.
* ``media == "transcript"`` talks (Korean): ``sentences``/``translation`` and
  the hand-written ``sentence_times`` are written out as two SRT files with
  identical cue times.

Requires: espeak-ng, festival (text2wave) with festvox-ru, sox, and PyAV
(``import av``) with the libopus encoder.

Usage: python make_audio.py [--only ID ...] [--check]
  --check  only decode the existing audio files and compare with talks.json
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "talks.json"

RATE = 16000
BITRATE = 24000
PAUSE_S = 0.7
LEAD_S = 0.3
TAIL_S = 0.5


# --------------------------------------------------------------------- TTS
def _run(cmd: list[str], **kw) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)


def synth_raw(text: str, tts: dict, out_wav: Path, tmp: Path) -> None:
    engine = tts["engine"]
    # Respellings steer a voice's pronunciation only; the manifest keeps the real spelling.
    for written, spoken in tts.get("respell", {}).items():
        text = text.replace(written, spoken)
    if engine == "espeak-ng":
        _run(["espeak-ng", "-v", tts.get("voice", "en-us"),
              "-s", str(tts.get("speed", 155)), "-w", str(out_wav), text])
    elif engine == "festival":
        txt = tmp / "sentence.txt"
        txt.write_text(text + "\n", encoding="utf-8")
        _run(["text2wave", "-eval", f"({tts['voice']})", str(txt), "-o", str(out_wav)])
    else:
        raise ValueError(f"unknown TTS engine {engine!r}")


def to_16k_mono(src: Path, dst: Path) -> np.ndarray:
    _run(["sox", "-R", "-D", str(src), "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer", str(dst)])
    with wave.open(str(dst), "rb") as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()


# ------------------------------------------------------------------- Opus
def encode_opus(samples: np.ndarray, path: Path) -> None:
    import av

    # bitexact: deterministic Ogg serial numbers / no encoder version tag,
    # so regenerating gives byte-identical files.
    with av.open(str(path), "w", format="ogg", options={"fflags": "+bitexact"}) as out:
        st = out.add_stream("libopus", rate=RATE)
        st.layout = "mono"
        st.bit_rate = BITRATE
        st.codec_context.flags |= av.codec.context.Flags.bitexact
        st.codec_context.options = {"application": "voip"}
        step = RATE  # feed one second at a time; PyAV re-blocks to the codec frame size
        pts = 0
        for i in range(0, len(samples), step):
            chunk = samples[i:i + step]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = RATE
            frame.pts = pts
            pts += len(chunk)
            for pkt in st.encode(frame):
                out.mux(pkt)
        for pkt in st.encode(None):
            out.mux(pkt)


def decode_duration(path: Path) -> tuple[float, int, int]:
    """Decode the whole file; return (seconds, sample_rate, channels)."""
    import av

    with av.open(str(path)) as f:
        st = f.streams.audio[0]
        n = 0
        rate = ch = None
        for fr in f.decode(st):
            n += fr.samples
            rate = fr.sample_rate
            ch = len(fr.layout.channels)
    return n / rate, st.codec_context.sample_rate, ch


# -------------------------------------------------------------------- SRT
def _srt_ts(t: float) -> str:
    ms = int(round(t * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def write_srt(path: Path, lines: list[str], times: list[list[float]]) -> None:
    assert len(lines) == len(times)
    blocks = [f"{i}\n{_srt_ts(a)} --> {_srt_ts(b)}\n{text}\n"
              for i, (text, (a, b)) in enumerate(zip(lines, times), 1)]
    path.write_text("\n".join(blocks), encoding="utf-8")


# ------------------------------------------------------------------- main
def build_audio_talk(talk: dict, tmp: Path) -> None:
    silence = lambda s: np.zeros(int(round(s * RATE)), dtype=np.int16)  # noqa: E731
    parts = [silence(LEAD_S)]
    pos = len(parts[0])
    times = []
    for i, sentence in enumerate(talk["sentences"]):
        raw, wav16 = tmp / f"s{i}_raw.wav", tmp / f"s{i}.wav"
        synth_raw(sentence, talk["tts"], raw, tmp)
        pcm = to_16k_mono(raw, wav16)
        if i:
            parts.append(silence(PAUSE_S))
            pos += len(parts[-1])
        times.append([round(pos / RATE, 3), round((pos + len(pcm)) / RATE, 3)])
        parts.append(pcm)
        pos += len(pcm)
    parts.append(silence(TAIL_S))
    audio = np.concatenate(parts)
    out = HERE / talk["file"]
    encode_opus(audio, out)
    talk["sentence_times"] = times
    talk["duration_s"] = round(len(audio) / RATE, 3)
    talk["audio"] = {"codec": "opus", "container": "ogg", "sample_rate": RATE,
                     "channels": 1, "bitrate": BITRATE}


def check(talks: list[dict]) -> bool:
    ok = True
    total = 0
    for t in talks:
        if t["media"] == "audio":
            p = HERE / t["file"]
            dur, rate, ch = decode_duration(p)
            size = p.stat().st_size
            total += size
            good = abs(dur - t["duration_s"]) < 0.1 and ch == 1 and t["sentence_times"][-1][1] <= dur
            ok &= good
            print(f"{'OK ' if good else 'BAD'} {t['file']:32s} {dur:6.2f}s (manifest {t['duration_s']:.2f}s) "
                  f"{size / 1024:6.1f} KiB  stream rate {rate} Hz, {ch} ch, {len(t['sentences'])} sentences")
        else:
            for f in (t["file"], t.get("translation_file")):
                if f:
                    good = (HERE / f).is_file()
                    ok &= good
                    print(f"{'OK ' if good else 'BAD'} {f:32s} {t['duration_s']:6.2f}s transcript, "
                          f"{len(t['sentences'])} cues")
    print(f"total audio: {total / 1024:.1f} KiB")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="talk ids to rebuild (default: all)")
    ap.add_argument("--check", action="store_true", help="only verify existing files")
    args = ap.parse_args()

    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    talks = manifest["talks"]
    if not args.check:
        missing = [t for t in ("espeak-ng", "text2wave", "sox") if not shutil.which(t)]
        if missing:
            print("missing tools: " + ", ".join(missing), file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory() as d:
            for t in talks:
                if args.only and t["id"] not in args.only:
                    continue
                print(f"building {t['id']} ...", flush=True)
                if t["media"] == "audio":
                    build_audio_talk(t, Path(d))
                else:
                    write_srt(HERE / t["file"], t["sentences"], t["sentence_times"])
                    write_srt(HERE / t["translation_file"], t["translation"], t["sentence_times"])
        text = json.dumps(manifest, ensure_ascii=False, indent=2)
        # keep each [start, end] pair on one line
        text = re.sub(r"\[\s+(-?[\d.]+),\s+(-?[\d.]+)\s+\]", r"[\1, \2]", text)
        MANIFEST.write_text(text + "\n", encoding="utf-8")
    return 0 if check(talks) else 1


if __name__ == "__main__":
    sys.exit(main())
