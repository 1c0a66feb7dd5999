"""Writes of the predictions app. Import from here; the modules are the implementation."""

from .good_files import good_file_register
from .predict import (
    FeedbackError,
    PredictionResponse,
    RowPrediction,
    prediction_feedback_record,
    predictions_make,
    served_model_get,
)
from .store import RowContext, prediction_rows_write

__all__ = [
    "FeedbackError",
    "PredictionResponse",
    "RowContext",
    "RowPrediction",
    "good_file_register",
    "prediction_feedback_record",
    "prediction_rows_write",
    "predictions_make",
    "served_model_get",
]
