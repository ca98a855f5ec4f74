"""The box's voice: short tones and spoken zh-CN prompts (WAV clips) played through ALSA.

`clips` names the clips and reads them (a hall's own recording first, then the one shipped here);
`player` plays them on a thread of its own, so no reader ever waits for a speaker.
"""

from edge_agent.sound.clips import CLIP_TEXTS, TONES, ClipName
from edge_agent.sound.player import ClipPlayer, Silent, Voice, voice_for

__all__ = ["CLIP_TEXTS", "TONES", "ClipName", "ClipPlayer", "Silent", "Voice", "voice_for"]
