"""medxlate: medical image modality translation with conditional GANs."""

from __future__ import annotations

__version__ = "0.1.0"
