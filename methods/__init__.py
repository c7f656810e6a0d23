"""Quality methods. Each module registers its methods with ``@register_method``; every module in this
package is imported when the method registry is first used, so a new method is one new file here."""
