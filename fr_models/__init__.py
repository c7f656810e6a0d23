"""Face recognition models, registered with ``@register_fr_model``. Modules are discovered automatically."""
