"""Signal models: ONNX theory models and a calibrated meta-learner, with their model card."""
