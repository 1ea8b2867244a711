from ..constants import OFFSET


def double_plus_offset(x: int) -> int:
    return 2 * x + OFFSET
