"""The embedded demo: committed PEFT adapters and the demo audit."""
