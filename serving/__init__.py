"""callqa.serving: the BentoML scoring service on onnxruntime, the review store and UI. Never imports torch."""
