"""Face analysis: detectors, alignment, embedding, landmarks, pose, quality, attributes, liveness."""
