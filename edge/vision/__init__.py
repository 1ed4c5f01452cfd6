"""Face analysis: detection, alignment, embedding, landmarks, pose, quality, liveness."""
