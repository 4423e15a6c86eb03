"""What the label columns of the unit metadata mean: `mg_label` indexes the 32 iMiGUE
micro-gesture classes (raw ids 1..31 and 99; 99 is index 31), `emotion` is 0 lose, 1 win.
Kept here, beside the unit schema, so every package names the classes the same way (the tasks
of `fusion/tasks/` read them from here)."""
from __future__ import annotations

from .units import COLUMN

MG_CLASS_NAMES: tuple[str, ...] = (
    "turtle neck", "deep breath", "touch hat", "touch face", "touch forehead",
    "cover face", "rub eyes", "touch other face part", "touch ears", "bite nails",
    "touch chin", "touch neck", "play hair", "tie", "chest", "back", "fold arm",
    "sleeve", "put arm back", "move torso", "sit straight", "scratch arm",
    "rub hand", "cross finger", "minaret hand", "play things", "withdraw arms",
    "head up", "bite lip", "arm akimbo", "shake shoulder", "illustrative",
)
EMOTION_CLASS_NAMES: tuple[str, ...] = ("lose", "win")  # emotion label 0, 1
LABEL_COLUMNS = (COLUMN.mg_label, COLUMN.emotion)  # the unit columns holding labels (entries must agree on them)
