"""Model fields Django does not ship."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.postgres.fields import ArrayField


class ChoiceArrayField(ArrayField):  # type: ignore[type-arg]
    """An ArrayField of a choice field, edited as checkboxes (Django's own ArrayField form field
    is a comma-separated text box, where a typo is found only on save)."""

    def formfield(self, **kwargs: Any) -> Any:
        defaults = {
            "form_class": forms.TypedMultipleChoiceField,
            "choices": self.base_field.choices,
            "coerce": self.base_field.to_python,
            "widget": forms.CheckboxSelectMultiple,
            **kwargs,
        }
        # Skip ArrayField.formfield, which would force its text box.
        return super(ArrayField, self).formfield(**defaults)
