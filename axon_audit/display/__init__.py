"""What a notebook shows: the escaped HTML cards and tables behind every `_repr_html_`."""
