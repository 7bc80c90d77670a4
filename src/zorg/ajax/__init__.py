"""zorg.ajax: the browser side of zorg.live (livepage.js)."""
