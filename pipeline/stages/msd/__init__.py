"""The mid-section-defect analysis: its detection window (``scope``) and input (``detection``),
the folder (``folding``) that hands over a frozen ``Fold``, and the readers of a fold
(``result``, ``detail``, ``attribution``, ``detection_stats``)."""
