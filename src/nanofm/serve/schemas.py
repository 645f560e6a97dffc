"""The JSON bodies of the endpoints (their OpenAPI schemas at /docs). Bounds that are options (text length,
steps, ...) are checked by the routes against the server's Limits; these hold the fixed ones."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

Texts = str | list[str]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class FillMaskRequest(Strict):
    text: Texts = Field(description='a text with one or more [MASK], or a list of them', examples=["La capital de [MASK] es Madrid."])
    top_k: int = Field(5, ge=1, le=50, description="candidates per mask")


class TranslateRequest(Strict):
    text: Texts = Field(description="a sentence, or a list of them", examples=["Soy estudiante."])
    beam: int = Field(4, ge=1, le=16, description="beam size (1: greedy)")
    attention: bool = Field(False, description="also return the cross-attention matrix (target x source tokens)")


class ClassifyRequest(Strict):
    text: Texts = Field(description="a text, or a list of them", examples=["Abra el menú Formato."])
    top_k: int | None = Field(None, ge=1, le=1000, description="labels per text (default: all)")


class TagRequest(Strict):
    text: Texts = Field(description="a text, or a list of them", examples=["Juan vive en Madrid."])


class GenerateRequest(Strict):
    caption: str = Field(min_length=1, description="what to draw", examples=["un vestido rojo"])
    n: int = Field(1, ge=1, description="images, side by side in one PNG")
    steps: int = Field(50, ge=1, description="DDIM steps of the decoder")
    guidance: float = Field(3.0, ge=0.0, le=20.0, description="classifier-free guidance scale")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="the same seed gives the same images")
