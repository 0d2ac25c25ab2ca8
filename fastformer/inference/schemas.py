"""The JSON answers of serve.py as pydantic models, for its OpenAPI document (/openapi.json). They describe what
`Predictor.predict` and the server return; the server sends those dicts as they are (extra fields included)."""

from __future__ import annotations

from typing import Dict, List, Optional

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Prediction", "PredictResponse", "HealthResponse", "ErrorResponse", "RESPONSES", "EXPLAIN_RESPONSES"]


class Prediction(BaseModel):
    """One text's result, in the order of the request's texts."""

    model_config = ConfigDict(extra="allow")  # fields a feature adds (POST /explain: "explanation") pass through

    rating: Optional[int] = Field(None, description="stars 1-5: only from a rating model (labels \"1\"..\"5\"), absent "
                                  "for other labels; null on error")
    label: Optional[str] = Field(None, description="the predicted label's name (config.json id2label); null on error")
    probabilities: Optional[Dict[str, float]] = Field(None, description="probability of each class, by name")
    truncated_tokens: int = Field(0, description="tokens dropped past the model's max length (0: none)")
    unk_share: Optional[float] = Field(None, description="share of the text's tokens unknown to the vocabulary")
    warning: Optional[str] = Field(None, description="set when most tokens are unknown: the result is unreliable")
    error: Optional[str] = Field(None, description="why this text got no prediction (empty, blank, no tokens)")


class PredictResponse(BaseModel):
    predictions: List[Prediction]


class HealthResponse(BaseModel):
    model_config = ConfigDict(extra="allow")  # the predictor's settings (backend, precision, max_length, ...)

    status: str = Field(description='"ok" once the model is loaded')
    labels: List[str] = Field(description="the model's class names, in class order")
    max_body_bytes: int
    max_texts: int
    batching: Dict[str, object] = Field(description="request batching settings and counters")


class ErrorResponse(BaseModel):
    detail: str = Field(description="what was wrong, in one line")


_ERROR = {"model": ErrorResponse}
# FastAPI `responses=` of POST /predict: documented, while the answer itself is the predictor's dicts unchanged
RESPONSES = {
    200: {"model": PredictResponse, "description": "one prediction per text, in order"},
    400: {**_ERROR, "description": "the body is not JSON"},
    408: {**_ERROR, "description": "the body did not arrive within --body_timeout"},
    413: {**_ERROR, "description": "more than --max_body_bytes bytes or --max_texts texts"},
    415: {**_ERROR, "description": "the body is not application/json"},
    422: {**_ERROR, "description": 'JSON of the wrong shape: {"texts": [str, ...]} expected'},
    500: {**_ERROR, "description": "the model gave non-finite outputs, or an internal error"},
    503: {**_ERROR, "description": "too many texts waiting: retry later"},
}
# POST /explain: the same answers, each prediction with its "explanation"; 501 where the server runs an export
EXPLAIN_RESPONSES = {**RESPONSES, 200: {"model": PredictResponse, "description": "one prediction per text, in order, "
                                        "each with its explanation"},
                     501: {**_ERROR, "description": "explanations need a trained model folder, not an export"}}
