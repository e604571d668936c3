"""The screens of the kubeferry TUI, one module each (imported when first opened)."""
