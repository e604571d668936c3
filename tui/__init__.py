"""The kubeferry terminal UI (Textual). Talks to clusters only through reconciler/."""
