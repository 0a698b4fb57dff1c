import factory

from components.models import Component, ComponentGroup, ComponentStatus


class ComponentGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ComponentGroup

    name = factory.Sequence(lambda n: f"Group {n}")
    position = factory.Sequence(lambda n: n + 1)


class ComponentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Component

    name = factory.Sequence(lambda n: f"Component {n}")
    position = factory.Sequence(lambda n: n + 1)

    class Params:
        degraded_performance = factory.Trait(status=ComponentStatus.DEGRADED_PERFORMANCE)
        partial_outage = factory.Trait(status=ComponentStatus.PARTIAL_OUTAGE)
        major_outage = factory.Trait(status=ComponentStatus.MAJOR_OUTAGE)
        under_maintenance = factory.Trait(status=ComponentStatus.UNDER_MAINTENANCE)
