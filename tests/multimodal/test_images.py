"""Image parts resolve to local images only; anything else is refused with a message naming the part."""

from __future__ import annotations

import pytest
from PIL import Image

from hf2vllm.errors import InputError
from hf2vllm.multimodal.images import image_ref_from_part, png_data_url


@pytest.fixture()
def png(tmp_path):
    path = tmp_path / "pic.png"
    Image.new("RGB", (30, 20), (10, 200, 30)).save(path)
    return path


def test_openai_file_url_resolves_to_the_file(png):
    ref = image_ref_from_part({"type": "image_url", "image_url": {"url": png.as_uri()}}, "m[0]", None)
    assert ref.path == str(png)
    assert ref.load().size == (30, 20)


def test_qwen_style_relative_path_resolves_against_the_prompt_file_directory(png):
    ref = image_ref_from_part({"type": "image", "image": "pic.png"}, "m[0]", png.parent)
    assert ref.load().getpixel((0, 0)) == (10, 200, 30)


def test_data_url_decodes_to_the_same_pixels():
    img = Image.new("RGB", (5, 4), (1, 2, 3))
    ref = image_ref_from_part({"type": "image_url", "image_url": {"url": png_data_url(img)}}, "m[0]", None)
    assert ref.load().tobytes() == img.tobytes()


@pytest.mark.parametrize("url", ["https://example.com/cat.png", "http://10.0.0.1/x.jpg"])
def test_remote_urls_are_refused_with_a_clear_message(url):
    with pytest.raises(InputError, match=r"messages\[0\]\.content\[1\]: image URL .* is remote; hf2vllm reads local images only"):
        image_ref_from_part({"type": "image_url", "image_url": {"url": url}}, "messages[0].content[1]", None)


def test_missing_file_and_bad_data_url_name_the_part(tmp_path):
    with pytest.raises(InputError, match=r"m\[2\]: image file not found: .*nope\.png"):
        image_ref_from_part({"type": "image", "image": str(tmp_path / "nope.png")}, "m[2]", None)
    with pytest.raises(InputError, match=r"m\[3\]: data URL payload is not valid base64"):
        image_ref_from_part({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}, "m[3]", None)
    with pytest.raises(InputError, match=r"m\[4\]: image part has no source"):
        image_ref_from_part({"type": "image"}, "m[4]", None)
