"""What the label columns of the unit metadata mean: `mg_label` indexes the 32 iMiGUE
micro-gesture classes (raw ids 1..31 and 99; 99 is index 31), `emotion` is 0 lose, 1 win.
Kept here, beside the unit schema, so every package names the classes the same way."""
from __future__ import annotations

MG_CLASS_NAMES: tuple[str, ...] = (
    "turtle neck", "deep breath", "touch hat", "touch face", "touch forehead",
    "cover face", "rub eyes", "touch other face part", "touch ears", "bite nails",
    "touch chin", "touch neck", "play hair", "tie", "chest", "back", "fold arm",
    "sleeve", "put arm back", "move torso", "sit straight", "scratch arm",
    "rub hand", "cross finger", "minaret hand", "play things", "withdraw arms",
    "head up", "bite lip", "arm akimbo", "shake shoulder", "illustrative",
)
EMOTION_CLASS_NAMES: tuple[str, ...] = ("lose", "win")  # emotion label 0, 1


def class_names(task: str, num_classes: int) -> list[str]:
    """Names of a task's classes (mg beyond the 32 named: their index)."""
    if task != "mg":
        return list(EMOTION_CLASS_NAMES)
    return [MG_CLASS_NAMES[i] if i < len(MG_CLASS_NAMES) else str(i) for i in range(num_classes)]
