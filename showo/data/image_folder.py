"""Class-labelled images in torchvision's ImageFolder layout: ``root/class_name/*.png``.

Labels are the sorted index of the class folder; the class name is the folder's name with
underscores read as spaces (``golden_retriever`` -> ``golden retriever``). Only the list of
paths is held in memory, and every epoch shuffles it whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .stream import IMAGE_EXTENSIONS, Record, StreamingSource, open_image


class ImageFolderSource(StreamingSource):
    """``{"kind": "class", "label", "class_name", "image", "source": path}``."""

    type_name = "image_folder"
    default_shuffle_buffer = 0  # the whole path list is shuffled already

    def __init__(self, root: str | Path, **options):
        super().__init__(**options)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image_folder: {self.root} is not a folder")
        folders = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            raise FileNotFoundError(f"image_folder: {self.root} has no class folders")
        self.classes = [f.name for f in folders]
        self.class_names = [name.replace("_", " ") for name in self.classes]
        self.images = [
            (path, label)
            for label, folder in enumerate(folders)
            for path in sorted(folder.iterdir())
            if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")
        ]
        if not self.images:
            raise FileNotFoundError(f"image_folder: no images ({', '.join(IMAGE_EXTENSIONS)}) under {self.root}")

    def files(self) -> list[tuple[Path, int]]:
        return self.images

    def read(self, item: tuple[Path, int]) -> Iterator[Record]:
        yield Record(str(item[0]), item)

    def decode(self, record: Record) -> dict:
        path, label = record.data
        return {
            "kind": "class",
            "label": label,
            "class_name": self.class_names[label],
            "image": open_image(path, record.where),
            "source": record.where,
        }

    def __repr__(self) -> str:
        return (
            f"ImageFolderSource({self.root}, {len(self.classes)} classes, {len(self.images)} images, "
            f"rank={self.rank}/{self.world_size})"
        )
