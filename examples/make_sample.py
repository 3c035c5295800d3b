"""Draw examples/sample.png: a 900x900 PNG (the size of the seed blog's input image)."""

from pathlib import Path

from wand.color import Color
from wand.drawing import Drawing
from wand.image import Image


def main() -> None:
    target = Path(__file__).with_name("sample.png")
    with Image(width=900, height=900, pseudo="gradient:#1e3c72-#2a5298") as image:
        with Drawing() as draw:
            draw.fill_color = Color("#f4d35e")
            draw.circle((450, 450), (450, 200))
            draw.fill_color = Color("#ee964b")
            draw.rectangle(left=100, top=620, right=800, bottom=700)
            draw.fill_color = Color("#0d3b66")
            draw.polygon([(450, 260), (600, 560), (300, 560)])
            draw(image)
        image.format = "png"
        image.strip()
        image.save(filename=str(target))
    print(target)


if __name__ == "__main__":
    main()
