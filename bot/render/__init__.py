"""Every message's text, one place per message kind: ``common`` (the primitives), ``answers`` (commands),
``tools`` (risk tools and protection), ``termsheet`` (VIP sheets), ``pushes`` (what the notifier sends),
``charts`` (the PNG pictures)."""
